"""``monitor status``: the pure summary from tables, the Redis reading against real Redis, and
the command after real pipeline activity."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from rich.console import Console

from monitor.cli import main
from monitor.core.polling import FeedHealth, PollOutcome
from monitor.core.rules import WatchConfig, build_config
from monitor.ops.status import plain_lines, summarize, tables
from monitor.roles.process import Processor, Runtime
from monitor.sources.replay import read_items
from monitor.store import Store
from monitor.store.finishing import FINISH
from monitor.store.keys import ALERT_BUCKET_S, alert_bucket
from monitor.store.placement_inputs import COUNT_LINES, FREQUENCIES
from monitor.store.snapshot import Queue, Snapshot, read_snapshot
from monitor.store.stories import StoryKeeper
from monitor.store.story_scripts import CANDIDATES, DETAILS, PLACE
from monitor.store.streams import item_entry
from tests.conftest import TEST_REDIS_URL, RoundTrips

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
NOW = datetime(2026, 11, 22, 10, 2, 30, tzinfo=UTC)
CONFIG = """
sources:
  - {id: fresh, type: feed, url: 'http://127.0.0.1:9/a', every: 5m, min: 1m, max: 1h}
  - {id: broken, type: feed, url: 'http://127.0.0.1:9/b', every: 5m, min: 1m, max: 1h}
  - {id: stale, type: feed, url: 'http://127.0.0.1:9/c', every: 5m, min: 1m, max: 1h}
  - {id: new, type: feed, url: 'http://127.0.0.1:9/d'}
  - {id: paused, type: feed, url: 'http://127.0.0.1:9/e', enabled: false}
rules:
  - {id: quiet, query: nothing}
  - {id: busy, query: maduro}
"""
RULES = """
entities:
  maduro: {aliases: ["Nicolás Maduro", "Maduro"]}
rules:
  - {id: maduro-release, query: '@maduro AND release*'}
"""


def health(at: datetime, error: str | None = None, failures: int = 1) -> dict[str, str]:
    state = FeedHealth()
    for n in range(failures if error else 1):
        state = state.update(PollOutcome(at=at + timedelta(seconds=n), error=error, entries=3))
    return state.to_mapping()


@pytest.fixture
def config() -> WatchConfig:
    return build_config([("watch.yaml", CONFIG)], {})


def snapshot(**overrides: Any) -> Snapshot:
    now = NOW.timestamp()
    bucket = alert_bucket(now)
    buckets = {
        bucket: {"alert:busy": "2", "followup:busy": "5"},
        bucket - 11: {"alert:busy": "1"},  # 55 minutes ago at most: the last hour
        bucket - 12: {"alert:busy": "10", "alert:removed": "4"},  # over an hour ago
        bucket - 287: {"followup:busy": "7"},  # the oldest bucket of the day
        bucket - 288: {"alert:busy": "100"},  # a day ago: out
        bucket + 1: {"alert:busy": "1000"},  # a clock ahead of ours: not counted
    }
    fields: dict[str, Any] = {
        "now": now,
        "health": {
            "fresh": health(NOW - timedelta(minutes=1)),
            "broken": health(NOW - timedelta(minutes=2), "HTTP 503", failures=3),
            "stale": health(NOW - timedelta(days=2)),
        },
        "buckets": buckets,
        "items": Queue(length=40, pending=2, lag=3, consumers=1),
        "outbox": Queue(length=12, pending=1, lag=None, consumers=2),
        "delayed": 4,
        "dead": 1,
        "held": 2,
        "problems": ("source:broken",),
    }
    return Snapshot(**{**fields, **overrides})


def test_summary_health_alert_windows_and_queues(config: WatchConfig) -> None:
    status = summarize(snapshot(), config, rules_dir="rules", redis="embedded:data")
    assert status["at"] == "2026-11-22T10:02:30+00:00"
    assert status["rules"] == {
        "dir": "rules",
        "count": 2,
        "ids": ["busy", "quiet"],
        "problems": [],
    }
    verdicts = {row["id"]: row["health"] for row in status["sources"]}
    assert verdicts == {
        "fresh": "ok",
        "broken": "failing",
        "stale": "overdue",
        "new": "never polled",
        "paused": "disabled",
    }
    broken = next(row for row in status["sources"] if row["id"] == "broken")
    assert (broken["error"], broken["consecutive_failures"]) == ("HTTP 503", 3)
    alerts = status["alerts"]
    assert alerts["rules"] == [
        {
            "rule": "busy",
            "last_hour": 3,
            "last_day": 13,
            "followups_last_hour": 5,
            "followups_last_day": 12,
            "configured": True,
        },
        {
            "rule": "quiet",
            "last_hour": 0,
            "last_day": 0,
            "followups_last_hour": 0,
            "followups_last_day": 0,
            "configured": True,
        },
        {
            "rule": "removed",
            "last_hour": 0,
            "last_day": 4,
            "followups_last_hour": 0,
            "followups_last_day": 0,
            "configured": False,
        },
    ]
    assert (alerts["last_hour"], alerts["last_day"], alerts["bucket_s"]) == (3, 17, ALERT_BUCKET_S)
    assert status["queues"] == {
        "items": {"length": 40, "pending": 2, "lag": 3, "consumers": 1},
        "outbox": {"length": 12, "pending": 1, "lag": None, "consumers": 2},
        "delayed": 4,
        "dead": 1,
        "held": 2,
    }
    assert status["problems"] == ["source:broken"]
    json.dumps(status)  # --json prints it as it is


def test_broken_rules_still_show_the_queues() -> None:
    status = summarize(
        snapshot(health={}), None, rules_dir="rules", problems=["rules/x.yaml:3:5: unknown @x"]
    )
    assert status["rules"]["problems"] == ["rules/x.yaml:3:5: unknown @x"]
    assert status["sources"] == [] and status["queues"]["dead"] == 1
    assert [row["configured"] for row in status["alerts"]["rules"]] == [False, False]
    assert "INVALID" in "\n".join(plain_lines(status))


def test_plain_lines_and_tables_show_every_part(config: WatchConfig) -> None:
    status = summarize(snapshot(), config, rules_dir="rules", redis="embedded:data")
    text = "\n".join(plain_lines(status))
    assert "rules in rules: 2 loaded: busy, quiet" in text
    assert "broken (feed, http://127.0.0.1:9/b): FAILING x3: HTTP 503" in text
    assert "busy: 3 / 13, follow-ups 5 / 12" in text
    assert "removed (no longer configured): 0 / 4" in text
    assert "outbox 12 entries, 1 pending; delayed retries 4; dead letters 1" in text
    assert "items 40 entries, 2 pending, 3 unread" in text
    assert "\x1b" not in text

    out = io.StringIO()
    Console(file=out, width=160, force_terminal=True, color_system=None).print(tables(status))
    shown = out.getvalue()
    for expected in ("Sources", "Alerts by rule", "Queues", "never polled", "dead letters"):
        assert expected in shown
    assert "FAILING x3: HTTP 503" in shown and "│ busy " in shown


async def test_the_processor_counts_alerts_in_the_outbox_round_trip(
    store: Store, round_trips: RoundTrips
) -> None:
    runtime = Runtime.build(build_config([("rules.yaml", RULES)], {}))
    processor = Processor(
        store,
        lambda: runtime,
        StoryKeeper(store),
        clock=NOW.timestamp,
    )
    await processor.start()
    items, _ = read_items(SEEDS, "seeds")
    await store.items.add_many([item_entry(item) for item in items])
    # Redis loads a Lua script the first time it runs; load placement's now, so the two
    # processors below are measured alike.
    for script in (
        COUNT_LINES,
        FREQUENCIES,
        CANDIDATES,
        DETAILS,
        PLACE,
        FINISH,
    ):
        await store.client.script_load(script)
    round_trips.count = 0
    assert await processor.step("worker") == 5
    with_counts = round_trips.count
    # Alerts written two hours ago count for the day, not for the hour.
    await store.add_alerts([], {"alert:maduro-release": 2}, NOW.timestamp() - 7200)

    found = await read_snapshot(store, ["seeds"], NOW.timestamp())
    assert found.buckets[alert_bucket(NOW.timestamp())] == {
        "alert:maduro-release": "1",
        "followup:maduro-release": "2",
    }
    status = summarize(found, runtime.config, rules_dir="rules")
    [row] = status["alerts"]["rules"]
    assert (row["last_hour"], row["last_day"], row["followups_last_hour"]) == (1, 3, 2)
    items_queue = status["queues"]["items"]
    # The items were processed: every group is done with them, the stream dropped them.
    assert (items_queue["length"], items_queue["pending"], items_queue["consumers"]) == (0, 0, 1)
    assert items_queue["lag"] in (0, None)  # Redis 7 tells, 6.2 (embedded) does not
    assert status["queues"]["outbox"]["length"] == 3  # one channel (the console) per alert
    assert status["queues"]["outbox"]["lag"] == 3  # no dispatch group yet: all of it waits

    # Counting costs no round trip of its own: the same batch without counts costs the same.
    uncounted = Processor(
        Store(store.client, prefix=store.keys.prefix + "b:"),
        lambda: runtime,
        StoryKeeper(Store(store.client, prefix=store.keys.prefix + "b:")),
        clock=NOW.timestamp,
        count_alerts=False,
    )
    await uncounted.start()
    await uncounted.store.items.add_many([item_entry(item) for item in items])
    round_trips.count = 0
    assert await uncounted.step("worker") == 5
    assert round_trips.count == with_counts
    assert (
        await store.client.exists(uncounted.store.keys.alert_counts(alert_bucket(NOW.timestamp())))
        == 0
    )
    ttl = await store.client.ttl(store.keys.alert_counts(alert_bucket(NOW.timestamp())))
    assert 86400 < ttl <= 2 * 86400


# --------------------------------------------------------------------------- the command


def invoke(args: list[str], env: dict[str, str | None]) -> Any:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


@pytest.fixture
def env(
    request: pytest.FixtureRequest, redis_client: Redis, key_prefix: str, tmp_path: Path
) -> dict[str, str | None]:
    """The command's settings for the Redis ``redis_client`` is connected to."""
    is_server = request.node.callspec.params["redis_client"] == "server"
    return {
        "MONITOR_DATA_DIR": str(tmp_path / "redis"),
        "MONITOR_REDIS_URL": TEST_REDIS_URL if is_server else None,
        "MONITOR_KEY_PREFIX": key_prefix,
        "MONITOR_RULES_DIR": str(ROOT / "rules"),
        "MONITOR_LOG_FORMAT": None,
        "MONITOR_HTTP_PORT": "0",
    }


async def test_status_json_after_a_real_run(env: dict[str, str | None]) -> None:
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--once",
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in env},
            **{k: v for k, v in env.items() if v is not None},
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(daemon.communicate(), 120)
    assert daemon.returncode == 0, stderr.decode()[-2000:]
    result = await asyncio.to_thread(invoke, ["status", "--json"], env)
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    status = json.loads(line)

    assert status["rules"]["count"] == len(status["rules"]["ids"]) == 6
    assert "maduro-release" in status["rules"]["ids"] and status["rules"]["problems"] == []
    [seeds] = status["sources"]
    assert (seeds["id"], seeds["health"], seeds["consecutive_failures"]) == ("seeds", "ok", 0)
    assert seeds["last_success"] and seeds["last_new_item"]
    by_rule = {row["rule"]: row for row in status["alerts"]["rules"]}
    assert set(by_rule) == set(status["rules"]["ids"])
    release = by_rule["maduro-release"]  # 000 alerts, 002 and 004 follow up (test_cli)
    assert (release["last_hour"], release["followups_last_hour"]) == (1, 2)
    assert (release["last_day"], release["followups_last_day"]) == (1, 2)
    alerts = status["alerts"]
    sent = alerts["last_day"] + alerts["followups_last_day"]
    queues = status["queues"]
    assert queues["items"]["length"] == 0 and queues["items"]["pending"] == 0
    assert sent and queues["outbox"]["length"] == 0  # all sent: the outbox keeps none
    assert queues["outbox"]["pending"] == 0 and queues["outbox"]["lag"] in (0, None)
    assert (queues["delayed"], queues["dead"]) == (0, 0)

    text = await asyncio.to_thread(invoke, ["status"], env)
    assert text.exit_code == 0
    assert "seeds (replay, " in text.stdout and "maduro-release: 1 / 1" in text.stdout


async def test_replayed_alerts_are_not_counted(env: dict[str, str | None]) -> None:
    """``replay --state`` prints its alerts; the daemon's channels never see them."""
    replayed = await asyncio.to_thread(invoke, ["replay", str(SEEDS), "--state", "--json"], env)
    assert replayed.exit_code == 0 and replayed.stdout.count("maduro-release") >= 3
    result = await asyncio.to_thread(invoke, ["status", "--json"], env)
    status = json.loads(result.stdout)
    assert (status["alerts"]["last_day"], status["alerts"]["followups_last_day"]) == (0, 0)
    assert status["queues"]["outbox"]["length"] == 0


def test_status_without_redis_says_so_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        main,
        ["status", "--json"],
        env={
            "MONITOR_REDIS_URL": f"redis://:pass-w0rd-9@127.0.0.1:{port}/0",
            "MONITOR_RULES_DIR": str(ROOT / "rules"),
        },
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Error: Redis connection to" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.output and "pass-w0rd-9" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


async def test_status_with_broken_rules_exits_1_and_still_reports(
    env: dict[str, str | None],
) -> None:
    broken = {**env, "MONITOR_RULES_DIR": str(ROOT / "tests" / "data" / "rules" / "broken")}
    result = await asyncio.to_thread(invoke, ["status", "--json"], broken)
    assert result.exit_code == 1
    status = json.loads(result.stdout)
    assert status["rules"]["count"] == 0 and status["rules"]["problems"]
    assert "missing ')'" in status["rules"]["problems"][0]
    assert status["queues"]["dead"] == 0


async def test_held_digests_and_operator_problems_are_read_from_redis(store: Store) -> None:
    await store.hold('{"b": 1}', NOW.timestamp() + 60, "d1", "{}", 3600, "dispatch", "0-1")
    await store.raise_problem("source", "wire-x", NOW.timestamp())
    found = await read_snapshot(store, [], NOW.timestamp())
    assert (found.held, found.problems) == (1, ("source:wire-x",))
    status = summarize(found, None, rules_dir="rules")
    assert status["queues"]["held"] == 1
    assert "operator alerts out: source:wire-x" in plain_lines(status)
