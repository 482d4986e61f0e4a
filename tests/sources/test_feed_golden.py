"""Golden pairs: each feed in ``tests/data/feeds/golden/`` next to the items it must yield.

``NAME.xml`` (or ``.rdf``, ``.json``) is parsed as fetched from ``URL`` at ``NOW``;
``NAME.expected.json`` holds whether it was bozo, the skipped entries and every item in full.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.models import Item
from monitor.sources.feed import parse_feed

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "feeds" / "golden"
NOW = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
URL = "https://golden.example.org/feeds/golden"
CASES = sorted(p for p in GOLDEN.iterdir() if not p.name.endswith(".expected.json"))
SHAPES = {
    "rss2-content-encoded.xml",
    "atom-xhtml.xml",
    "rdf-rss1.rdf",
    "jsonfeed-1.1.json",
    "iso-8859-1-prolog.xml",
    "undeclared-encoding.xml",
    "html-entities.xml",
    "html-entities-undeclared.xml",
    "no-dates.xml",
    "date-without-timezone.xml",
    "duplicate-guids.xml",
    "script-in-entry.xml",
}


def test_every_shape_has_a_golden_pair() -> None:
    assert {p.name for p in CASES} == SHAPES
    for case in CASES:
        assert (GOLDEN / f"{case.stem}.expected.json").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path) -> None:
    expected = json.loads((GOLDEN / f"{case.stem}.expected.json").read_text(encoding="utf-8"))
    feed = parse_feed(case.read_bytes(), "golden", URL, now=NOW)
    assert [item.to_dict() for item in feed.items] == expected["items"]
    assert (feed.bozo is not None) == expected["bozo"], feed.bozo
    assert list(feed.problems) == expected["problems"]
    assert all(Item.from_dict(item.to_dict()) == item for item in feed.items)


def test_latin1_prolog_is_not_read_as_utf8() -> None:
    """The same words whichever way the bytes are declared."""
    feed = parse_feed((GOLDEN / "iso-8859-1-prolog.xml").read_bytes(), "golden", now=NOW)
    assert feed.items[0].title == "Grüße aus München"
    assert "\ufffd" not in feed.items[0].text


def test_script_content_never_reaches_the_text() -> None:
    (item,) = parse_feed((GOLDEN / "script-in-entry.xml").read_bytes(), "golden", now=NOW).items
    for hidden in (
        "alert",
        "injected",
        "not text",
        "color",
        "Enable JavaScript",
        "iframe",
        "vector",
    ):
        assert hidden not in item.title and hidden not in item.text
