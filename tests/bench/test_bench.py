"""``monitor bench parse`` and ``poll`` at tiny sizes: what they report, not how fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from monitor.bench.feeds import (
    NEW_PER_VERSION,
    FeedServer,
    FeedServerProcess,
    changed_feeds,
    feed_document,
    feed_path,
)
from monitor.cli import main
from monitor.sources.feed import parse_feed

ROOT = Path(__file__).resolve().parents[2]
COMMON_KEYS = {"machine", "python"}
PARSE_KEYS = {"parse_entries_per_s", "baseline_parse_entries_per_s", "ratio", "entries", "repeat"}
SOURCES_KEYS = {
    "feeds",
    "cycle_s",
    "feeds_per_s",
    "not_modified",
    "feedparser_calls",
    "changed",
    "max_rss_mib",
    "per_host",
    "ports",
}


def bench_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["bench", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.stdout.splitlines() if line.startswith("{")]
    report: dict[str, Any] = json.loads(line)
    return report


def test_parse_reports_both_rates_on_the_same_entries() -> None:
    report = bench_json("parse", "--documents", "2", "--entries", "5", "--repeat", "1")
    assert report.keys() >= PARSE_KEYS | COMMON_KEYS
    assert report["parse_entries_per_s"] > 0 and report["baseline_parse_entries_per_s"] > 0
    assert report["ratio"] > 0
    assert report["entries"] == report["baseline_entries"] == 10
    assert report["identical_items"] == 10  # the same output work on both sides
    assert report["repeat"] == 1


def test_sources_cycle_answers_304_for_unchanged_feeds_and_never_parses_them() -> None:
    report = bench_json("poll", "--feeds", "40", "--ports", "4")
    assert report.keys() >= SOURCES_KEYS | COMMON_KEYS
    assert report["errors"] == 0, report["error_examples"]
    assert report["warmup_statuses"] == {"200": 40}
    assert report["warmup_feedparser_calls"] == 40
    assert report["changed"] == 2  # 5% of 40
    assert report["not_modified"] == 38
    assert report["statuses"] == {"304": 38, "200": 2}
    assert report["requests"] == 40  # each feed polled exactly once in the cycle
    assert report["feedparser_calls"] == report["changed"]
    assert report["entries_parsed"] == 2 * 25
    assert report["cycle_s"] > 0 and report["feeds_per_s"] > 0 and report["max_rss_mib"] > 0


def test_each_bench_is_a_subcommand_of_its_own() -> None:
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert listed == {"match", "parse", "poll", "dispatch", "dedup", "process", "workers", "reload"}
    mixed = CliRunner().invoke(main, ["bench", "parse", "--feeds", "4"])
    assert mixed.exit_code == 2 and "No such option" in mixed.output


def test_synthetic_feeds_are_deterministic_and_parse_to_clean_text() -> None:
    for feed in (0, 1):  # RSS, then Atom
        document = feed_document(7, feed, entries=4)
        assert document == feed_document(7, feed, entries=4)
        items = parse_feed(document, "bench", f"https://site{feed}.example/feed").items
        assert len(items) == 4
        assert all(item.text and "dataLayer" not in item.text for item in items)
        assert all("&amp;" not in item.title and "&" in item.title for item in items)
    older = parse_feed(feed_document(7, 0, entries=4), "bench").items
    newer = parse_feed(feed_document(7, 0, entries=4, version=1), "bench").items
    assert newer[NEW_PER_VERSION:] == older[: 4 - NEW_PER_VERSION]  # the same entry, unchanged


async def test_server_answers_304_until_a_changed_feed_moves_on() -> None:
    server = FeedServer(feeds=4, entries=3, changed=frozenset({1}), ports=2)
    [port_a, port_b] = await server.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as client:

            async def get(feed: int, etag: str | None = None) -> httpx.Response:
                port = (port_a, port_b)[feed % 2]
                headers = {"If-None-Match": etag} if etag else {}
                return await client.get(
                    f"http://127.0.0.1:{port}{feed_path(feed)}", headers=headers
                )

            first = {feed: await get(feed) for feed in (0, 1)}
            assert all(r.status_code == 200 and r.headers["etag"] for r in first.values())
            assert (await get(0, first[0].headers["etag"])).status_code == 304
            assert server.next_cycle()["served"] == {"200": 2, "304": 1}
            assert (await get(0, first[0].headers["etag"])).status_code == 304
            moved = await get(1, first[1].headers["etag"])
            assert moved.status_code == 200 and moved.headers["etag"] != first[1].headers["etag"]
            assert (await client.get(f"http://127.0.0.1:{port_a}/feeds/9.xml")).status_code == 404
    finally:
        await server.close()


async def test_server_process_serves_and_exits_when_closed() -> None:
    server = FeedServerProcess(3, entries=2, ports=2, seed=1, changed_share=0.34)
    async with server:
        assert len(server.ports) == 2 and server.changed == changed_feeds(3, 0.34, 1)
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(server.url(2))
        assert response.status_code == 200 and b"<rss" in response.content
        assert (await server.next_cycle())["served"] == {"200": 1}
        process = server._process
    assert process is not None and process.returncode == 0


def test_dispatch_bench_delivers_every_alert_and_reports_percentiles() -> None:
    result = CliRunner().invoke(
        main, ["bench", "dispatch", "--rate", "50", "--seconds", "0.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alerts"] == 25 and report["delivered"] == 25
    assert 0 <= report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"] <= report["max_ms"]


def test_dispatch_bench_runs_the_process_role_in_the_same_process_when_asked() -> None:
    """The process role takes generated articles (whose generated rules alert) while the bench's
    alerts are timed: both sets of alerts arrive, the bench's are the ones timed."""
    before = sys.getswitchinterval()
    result = CliRunner().invoke(
        main,
        ["bench", "dispatch", "--rate", "50", "--seconds", "0.5", "--process", "--count", "60",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alerts"] == 25 and report["processed"] == 60  # one batch, before the timing
    assert report["delivered"] > 25  # the process role's own alerts went out too
    assert sys.getswitchinterval() == before  # the daemon's setting did not outlive the run


def test_dispatch_bench_runs_the_process_role_in_a_worker_process_when_asked() -> None:
    """As the daemon runs it beside other roles: a spawned worker on the bench's Redis takes the
    articles, its alerts go through the bench's channel, its counts come back."""
    result = CliRunner().invoke(
        main,
        ["bench", "dispatch", "--rate", "50", "--seconds", "0.5", "--process-worker", "--count",
         "60", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["process_role"] == "worker process"
    assert report["alerts"] == 25 and report["processed"] == 60
    assert report["delivered"] > 25  # the worker's own alerts went out too


def test_process_counts_commands_round_trips_bytes_and_memory_beside_a_baseline(
    tmp_path: Path,
) -> None:
    """The baseline is this very checkout run as the script a checkout of its own would be:
    the same articles give the same counts (the timings are the machine's)."""
    rows = tmp_path / "articles.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"title": f"Storm {n} floods town {n % 7}", "text": f"Rain fell. {n} " * 40})
            for n in range(40)
        )
    )
    report = bench_json(
        "process", "--items", str(rows), "--count", "30", "--repeat", "1", "--baseline", str(ROOT)
    )
    assert report["items"] == 30 and report["batches"] == 1
    for key in ("commands_per_item", "round_trips_per_batch", "executed_per_item"):
        assert report[key] > 0 and report[key] == report["baseline"][key]
    assert report["executed_per_item"] > report["commands_per_item"]  # scripts run many
    assert report["kb_sent_per_item"] > 0 and report["kb_kept_per_item"] > 0
    assert report["items_per_cpu_s"] > 0 and report["baseline"]["items_per_cpu_s"] > 0


def test_workers_share_the_items_and_each_item_is_processed_once(tmp_path: Path) -> None:
    """Two worker processes on one embedded Redis take every article between them, once; one
    worker alone never has to write a batch again."""
    rows = tmp_path / "articles.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"title": f"Storm {n} floods town {n % 7}", "text": f"Rain fell. {n} " * 40})
            for n in range(400)
        )
    )
    report = bench_json("workers", "--items", str(rows), "--count", "400", "--workers", "2")
    assert "baseline" not in report
    report = report["current"]
    alone, together = report["alone"], report["together"]
    assert alone["workers"] == 1 and together["workers"] == 2
    assert alone["items"] == together["items"] == 400
    assert sum(together["batches_by_worker"]) == together["batches"] >= 4
    assert alone["retries"] == {}  # one worker never collides with itself
    assert report["speedup"] > 0 and together["items_per_cpu_s"] > 0


def test_reload_compiles_the_rules_in_a_thread_and_on_the_loop_alike() -> None:
    """Both reloads compile every rule; on the loop nothing else runs meanwhile (the ticker
    wakes once it is over), in a thread the loop keeps waking."""
    report = bench_json("reload", "--rules", "1000")
    thread, loop = report["in_thread"], report["on_the_loop"]
    assert thread["rules"] == loop["rules"] == 1000
    assert loop["loop_lag_max_ms"] >= loop["reload_s"] * 1000 * 0.9
    assert thread["ticks"] > loop["ticks"]
