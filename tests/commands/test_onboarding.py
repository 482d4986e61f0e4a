"""`monitor sources add | import | export` against a real local HTTP server and real files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from monitor.app.config_edit import source_id, with_sources
from monitor.app.config_files import load_config
from monitor.cli import main
from monitor.commands.onboarding import export_opml, opml_feeds
from tests.factories import entries, rss
from tests.sources import http_server as hs

SOURCES = """# Where items come from: the desk's feeds.
sources:
  - id: seeds          # the fixture articles
    type: replay
    path: seeds/
"""
RULES = """rules:
  - id: floods
    query: flood*
"""

PAGE = """<!doctype html><html><head><title>Town Gazette</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="Latest" href="/news/rss">
</head><body><h1>Town Gazette</h1></body></html>"""


def rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sources.yaml").write_text(SOURCES)
    (rules / "rules.yaml").write_text(RULES)
    return rules


async def invoke(args: list[str], rules: Path, tmp_path: Path) -> Any:
    env = {"MONITOR_RULES_DIR": str(rules), "MONITOR_DATA_DIR": str(tmp_path / "data")}
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)


async def test_add_finds_the_feed_a_page_announces_and_keeps_the_file(
    server: hs.Server, tmp_path: Path
) -> None:
    server.static("/", PAGE.encode(), ("Content-Type", "text/html"))
    server.static("/news/rss", rss(entries(range(4))), ("Content-Type", "application/rss+xml"))
    rules = rules_dir(tmp_path)
    result = await invoke(["sources", "add", server.url("/")], rules, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{server.url('/news/rss')} (" in result.stdout and "4 entries" in result.stdout
    text = (rules / "sources.yaml").read_text()
    assert text.startswith(SOURCES)  # comments, order and layout untouched
    config = load_config(rules)
    added = config.sources[-1]
    assert (added.id, added.type, str(getattr(added, "url", ""))) == (
        "127-0-0-1",
        "feed",
        server.url("/news/rss"),
    )
    again = await invoke(["sources", "add", server.url("/news/rss")], rules, tmp_path)
    assert again.exit_code == 2 and "is already a source" in again.output


async def test_add_tries_common_paths_and_says_what_it_tried(
    server: hs.Server, tmp_path: Path
) -> None:
    server.static(
        "/", b"<html><head><title>Plain</title></head></html>", ("Content-Type", "text/html")
    )
    rules = rules_dir(tmp_path)
    missing = await invoke(["sources", "add", server.url("/")], rules, tmp_path)
    assert missing.exit_code == 1
    assert "no feed added:" in missing.stdout and "/rss.xml" in missing.stdout
    assert (rules / "sources.yaml").read_text() == SOURCES  # nothing written
    server.static("/feed.xml", rss(entries(range(2))), ("Content-Type", "text/xml"))
    found = await invoke(["sources", "add", server.url("/"), "--id", "plain"], rules, tmp_path)
    assert found.exit_code == 0, found.output
    assert [s.id for s in load_config(rules).sources] == ["seeds", "plain"]


async def test_opml_import_adds_new_feeds_and_export_lists_them(
    server: hs.Server, tmp_path: Path
) -> None:
    rules = rules_dir(tmp_path)
    opml = tmp_path / "feeds.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>Reader</title></head><body>'
        '<outline text="News"><outline type="rss" text="Gazette" '
        'xmlUrl="https://gazette.example/rss"/>'
        '<outline type="rss" text="Wire" xmlUrl="https://www.wire.example/feed.xml"/></outline>'
        "</body></opml>"
    )
    first = await invoke(["sources", "import", str(opml)], rules, tmp_path)
    assert first.exit_code == 0 and "added 2 feeds" in first.stdout, first.output
    again = await invoke(["sources", "import", str(opml)], rules, tmp_path)
    assert "added 0 feeds" in again.stdout and "(2 already subscribed)" in again.stdout
    exported = await invoke(["sources", "export"], rules, tmp_path)
    assert opml_feeds(exported.stdout.encode()) == [
        ("gazette-example", "https://gazette.example/rss"),
        ("wire-example", "https://www.wire.example/feed.xml"),
    ]
    bad = tmp_path / "bad.opml"
    bad.write_text("<html></html>")
    refused = await invoke(["sources", "import", str(bad)], rules, tmp_path)
    assert refused.exit_code == 2 and "not an OPML file" in refused.output


def test_a_source_that_breaks_the_rules_is_not_written(tmp_path: Path) -> None:
    from monitor.app.config_edit import add_sources
    from monitor.errors import ConfigError

    rules = rules_dir(tmp_path)
    try:
        add_sources(rules, [{"id": "seeds", "type": "feed", "url": "https://x.example/rss"}])
    except ConfigError as exc:
        assert "duplicate source id 'seeds'" in str(exc)
    else:
        raise AssertionError("a duplicate id was written")
    assert (rules / "sources.yaml").read_text() == SOURCES


def test_ids_come_from_the_host_and_stay_unique() -> None:
    assert source_id("https://www.theguardian.com/world/rss", set()) == "theguardian-com"
    assert source_id("https://feeds.bbci.co.uk/news/rss.xml", {"feeds-bbci-co-uk"}) == (
        "feeds-bbci-co-uk-2"
    )
    assert with_sources("", [{"id": "a", "type": "feed", "url": "https://a.example/"}]) == (
        "sources:\n  - id: a\n    type: feed\n    url: https://a.example/\n"
    )
    exported = export_opml(load_config_for_export()).encode()
    assert opml_feeds(exported) == [("a", "https://a.example/rss")]


def load_config_for_export() -> Any:
    from monitor.core.rules import build_config

    return build_config(
        [("s.yaml", "sources:\n  - {id: a, type: feed, url: 'https://a.example/rss'}\n")], {}
    )
