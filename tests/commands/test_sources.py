"""`monitor sources check` against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
from tests.factories import entries, rss
from tests.sources import http_server as hs


async def test_sources_check_reports_each_source_and_fails_on_errors(
    server: hs.Server, tmp_path: Path
) -> None:
    server.static("/good", rss(entries(range(3))), ("Content-Type", "application/rss+xml"))
    server.routes["/gone"] = hs.status(410)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sources.yaml").write_text(
        "sources:\n"
        f"  - {{id: good, type: feed, url: '{server.url('/good')}?apikey=${{FEED_KEY}}'}}\n"
        f"  - {{id: gone, type: feed, url: '{server.url('/gone')}'}}\n"
    )
    env = {
        "MONITOR_RULES_DIR": str(rules),
        "MONITOR_DATA_DIR": str(tmp_path / "data"),
        "FEED_KEY": "topsecretvalue123",
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["sources", "check", "--json"], env=env
    )
    assert result.exit_code == 1, result.output
    rows = {row["id"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["good"]["status"] == 200 and rows["good"]["entries"] == 3
    assert rows["good"]["bytes"] > 0 and rows["good"]["error"] is None
    assert rows["gone"]["status"] == 410 and "410" in rows["gone"]["error"]
    assert rows["gone"]["entries"] == 0
    assert "topsecretvalue123" not in result.output and "apikey=****" in rows["good"]["url"]
