"""The metrics the roles count, the gauges read from Redis, and the health verdict."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.channels.console import ConsoleChannel
from monitor.core.health import HEARTBEAT_MAX_AGE_S, assess
from monitor.core.rules import build_config
from monitor.errors import FetchErrorKind
from monitor.models import Alert, Item
from monitor.ops.metrics import Metrics, poll_result
from monitor.roles.dispatch import Dispatcher
from monitor.roles.process import Processor, Runtime
from monitor.sources.base import FetchResult
from monitor.store import Store
from monitor.store.snapshot import RedisGauges, ping, read_gauges
from monitor.store.stories import StoryKeeper
from monitor.store.streams import item_entry


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def samples(metrics: Metrics) -> dict[str, float]:
    """Every sample of the exposition, as Prometheus would parse it: ``name{a="b"}`` → value."""
    text = generate_latest(metrics.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@pytest.mark.parametrize("kind", list(FetchErrorKind))
def test_a_failed_poll_is_labelled_with_the_kind_its_source_gave(kind: FetchErrorKind) -> None:
    result = FetchResult("s", error="whatever the server said", error_kind=kind, status=200)
    assert poll_result(result) == kind.value


@pytest.mark.parametrize(
    ("result", "label"),
    [
        (FetchResult("s"), "ok"),
        (FetchResult("s", not_modified=True), "not-modified"),
        (FetchResult("s", error="HTTP 404 Not Found", status=404), "other"),  # no kind given
    ],
)
def test_a_poll_without_an_error_kind(result: FetchResult, label: str) -> None:
    assert poll_result(result) == label


def test_a_poll_without_error_is_ok_or_not_modified() -> None:
    assert poll_result(FetchResult("s", status=200)) == "ok"
    assert poll_result(FetchResult("s", status=304, not_modified=True)) == "not-modified"


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.polled("feed", FetchResult("feed", status=200), new=0, seconds=0.1)
    assert value(a, "newsmonitor_polls_total", source="feed", result="ok") == 1
    assert value(b, "newsmonitor_polls_total", source="feed", result="ok") == 0


def test_a_poll_counts_its_result_its_time_and_its_entries() -> None:
    metrics = Metrics()
    items = tuple(Item(id=f"f:{n}", source="feed", title=f"t{n}", text="") for n in range(4))
    metrics.polled("feed", FetchResult("feed", items=items, status=200), new=3, seconds=0.2)
    metrics.polled(
        "feed",
        FetchResult("feed", error="HTTP 500", error_kind=FetchErrorKind.HTTP_5XX, status=500),
        new=0,
        seconds=1,
    )
    metrics.poll_failed("feed")
    got = samples(metrics)
    assert got['newsmonitor_polls_total{result="ok",source="feed"}'] == 1
    assert got['newsmonitor_polls_total{result="http-5xx",source="feed"}'] == 1
    assert got['newsmonitor_polls_total{result="redis",source="feed"}'] == 1
    assert got['newsmonitor_poll_duration_seconds_count{source="feed"}'] == 2
    assert got['newsmonitor_poll_duration_seconds_bucket{le="0.25",source="feed"}'] == 1
    assert got['newsmonitor_entries_fetched_total{source="feed"}'] == 4
    assert got['newsmonitor_entries_new_total{source="feed"}'] == 3


def test_reloads_count_and_keep_the_last_result_and_time() -> None:
    metrics = Metrics()
    metrics.configured(ok=True, rules=3, at=1000.0)
    metrics.reloaded(ok=False, rules=None, at=2000.0)
    assert value(metrics, "newsmonitor_rules_loaded") == 3  # the last good config stays
    assert value(metrics, "newsmonitor_config_last_reload_success") == 0
    assert value(metrics, "newsmonitor_config_last_reload_timestamp_seconds") == 2000
    metrics.reloaded(ok=True, rules=5, at=3000.0)
    assert value(metrics, "newsmonitor_rules_loaded") == 5
    assert value(metrics, "newsmonitor_config_last_reload_success") == 1
    assert value(metrics, "newsmonitor_config_reloads_total", result="ok") == 1
    assert value(metrics, "newsmonitor_config_reloads_total", result="error") == 1


def test_redis_gauges_show_only_while_redis_answers() -> None:
    metrics = Metrics()
    assert samples(metrics)["newsmonitor_redis_up"] == 0
    assert "newsmonitor_outbox_length" not in samples(metrics)
    metrics.redis.update(
        RedisGauges(outbox_length=7, dead_letters=2, failures={"a": 0, "b": 3, "c": 1})
    )
    got = samples(metrics)
    assert got["newsmonitor_redis_up"] == 1
    assert got["newsmonitor_outbox_length"] == 7
    assert got["newsmonitor_dead_letters"] == 2
    assert got["newsmonitor_feeds_failing"] == 2
    assert got['newsmonitor_source_consecutive_failures{source="b"}'] == 3
    metrics.redis.update(None)  # Redis stopped answering: no stale numbers
    assert "newsmonitor_outbox_length" not in samples(metrics)
    assert samples(metrics)["newsmonitor_redis_up"] == 0


async def test_the_process_and_dispatch_roles_count_what_they_do(store: Store) -> None:
    metrics = Metrics()
    config = build_config([("rules.yaml", "rules:\n  - {id: council, query: council}\n")], {})
    runtime = Runtime.build(config)
    processor = Processor(store, lambda: runtime, StoryKeeper(store), metrics=metrics)
    await processor.start()
    items = [
        Item(id="a:1", source="a", title="The council votes on the harbour plan", text="Vote."),
        Item(id="a:2", source="a", title="Rain expected in the north tomorrow", text="Rain."),
    ]
    await store.items.add_many([item_entry(i) for i in [*items, items[0]]])
    await store.items.add_many([{"not": "an item"}])
    while await processor.step("worker"):
        pass
    assert value(metrics, "newsmonitor_items_processed_total", result="new") == 2
    assert value(metrics, "newsmonitor_items_processed_total", result="seen") == 1
    assert value(metrics, "newsmonitor_items_processed_total", result="malformed") == 1
    assert value(metrics, "newsmonitor_stories_created_total") == 2
    # Every readable item is matched, before placement finds the copy seen.
    assert value(metrics, "newsmonitor_match_duration_seconds_count") == 3
    assert value(metrics, "newsmonitor_alerts_raised_total", rule="council", kind="first") == 1

    screen = ConsoleChannel("console")
    dispatcher = Dispatcher(store, {"console": screen}, metrics=metrics)
    await dispatcher.start()
    orphan = Alert.from_dict(
        {
            "id": "x1",
            "rule": "council",
            "rule_name": "Council",
            "severity": "normal",
            "item": items[0].to_dict(),
            "story": "s",
            "matches": [],
            "channels": ["gone"],
        }
    )
    await store.outbox.add_many([{"channel": "gone", "alert": orphan.to_dict()}])
    while await dispatcher.step("worker"):
        pass
    assert value(metrics, "newsmonitor_alert_deliveries_total", **sent("console")) == 1
    dead = {"rule": "council", "channel": "gone", "result": "dead"}
    assert value(metrics, "newsmonitor_alert_deliveries_total", **dead) == 1


def sent(channel: str) -> dict[str, str]:
    return {"rule": "council", "channel": channel, "result": "sent"}


async def test_read_gauges_reads_queues_dead_letters_and_failing_sources(store: Store) -> None:
    empty = await read_gauges(store, ["a"])
    assert empty == RedisGauges(failures={"a": 0})  # no stream, no group yet: zeros
    await store.outbox.ensure_group("dispatch")
    await store.outbox.add_many([{"n": 1}, {"n": 2}, {"n": 3}])
    await store.outbox.read("dispatch", "worker", 2)
    await store.dead.add_many([{"reason": "r"}])
    await store.delay('{"n": 4}', 10.0)
    await store.set_health("a", {"consecutive_failures": "4"})
    gauges = await read_gauges(store, ["a", "b"])
    assert gauges is not None
    assert (gauges.outbox_length, gauges.outbox_pending, gauges.outbox_delayed) == (3, 2, 1)
    assert gauges.dead_letters == 1
    assert gauges.failures == {"a": 4, "b": 0}
    assert await ping(store) is None


async def test_ping_says_when_there_is_no_store() -> None:
    assert await ping(None) == "not connected yet"


FAILED_READ = {"dispatch": "Redis XREADGROUP failed"}


@pytest.mark.parametrize(
    ("redis_error", "beats", "failing", "scheduler", "reasons"),
    [
        (None, {"process": 99.0, "dispatch": 50.0}, {}, True, []),
        (None, {}, {}, None, []),
        ("no answer within 2 s", {"process": 99.0}, {}, True, ["redis: no answer within 2 s"]),
        (None, {"process": None}, {}, None, ["process: loop not started"]),
        (None, {"dispatch": 30.0}, {}, None, ["dispatch: loop silent for 70 s (limit 60 s)"]),
        (None, {"dispatch": 99.0}, FAILED_READ, None, ["dispatch: Redis XREADGROUP failed"]),
        (None, {"process": 99.0}, FAILED_READ, None, []),  # not a loop of this daemon
        (None, {}, {}, False, ["poll: scheduler not running"]),
        (
            "PING failed",
            {"process": 0.0, "dispatch": 100.0},
            {},
            False,
            [
                "redis: PING failed",
                "process: loop silent for 100 s (limit 60 s)",
                "poll: scheduler not running",
            ],
        ),
    ],
)
def test_health_verdicts(
    redis_error: str | None,
    beats: dict[str, float | None],
    failing: dict[str, str],
    scheduler: bool | None,
    reasons: list[str],
) -> None:
    health = assess(
        now=100.0,
        redis_error=redis_error,
        beats=beats,
        scheduler_running=scheduler,
        failing=failing,
        max_age_s=HEARTBEAT_MAX_AGE_S,
    )
    assert list(health.reasons) == reasons
    assert health.ok is (not reasons)
    assert health.to_dict() == {
        "status": "ok" if not reasons else "failing",
        "reasons": reasons,
        "warnings": [],
    }
