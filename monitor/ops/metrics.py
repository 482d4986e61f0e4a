"""The daemon's Prometheus metrics, in a registry of its own (every one listed in docs/metrics.md).

Each ``Metrics`` owns a ``CollectorRegistry`` instead of using prometheus-client's global one,
so several daemons, or tests, in one process keep apart. The roles count what they do through
the small methods below; what lives in Redis (queue lengths, dead letters, failing feeds) is
read when ``/metrics`` is scraped and handed to ``redis`` as one snapshot, so a Redis that is
down shows as ``newsmonitor_redis_up 0`` instead of stale numbers.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.errors import FetchErrorKind
from monitor.store.snapshot import RedisGauges
from monitor.store.streams import alert_ref

if TYPE_CHECKING:
    from monitor.models import Alert, Outcome
    from monitor.sources.base import FetchResult
    from monitor.store.stories import Placement

__all__ = ["ITEM_RESULTS", "Metrics", "poll_result"]

PREFIX = "newsmonitor_"
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
MATCH_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 0.25)
ITEM_RESULTS = ("new", "duplicate", "seen", "malformed")


def poll_result(result: FetchResult) -> str:
    """The ``result`` label of one poll: ``ok``, ``not-modified``, or the kind of error."""
    if result.error is None:
        return "not-modified" if result.not_modified else "ok"
    return str(result.error_kind or FetchErrorKind.OTHER)


class RedisCollector(Collector):
    """Yields the last Redis snapshot, or only ``redis_up 0`` when the last read failed."""

    def __init__(self) -> None:
        self.snapshot: RedisGauges | None = None

    def update(self, snapshot: RedisGauges | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot
        yield GaugeMetricFamily(
            PREFIX + "redis_up",
            "1 when Redis answered the last scrape's reads, else 0.",
            value=0 if snapshot is None else 1,
        )
        if snapshot is None:
            return
        plain = (
            ("items_stream_length", "Entries in the items stream.", snapshot.items_length),
            (
                "items_pending",
                "Items read by a processor, not acknowledged.",
                snapshot.items_pending,
            ),
            ("outbox_length", "Entries in the outbox stream.", snapshot.outbox_length),
            ("outbox_pending", "Outbox entries read, not acknowledged.", snapshot.outbox_pending),
            ("outbox_delayed", "Deliveries waiting for a retry.", snapshot.outbox_delayed),
            ("dead_letters", "Deliveries in the dead-letter stream.", snapshot.dead_letters),
            ("stories", "Stories kept in Redis.", snapshot.stories),
            (
                "feeds_failing",
                "Configured sources whose last poll failed.",
                sum(1 for n in snapshot.failures.values() if n > 0),
            ),
        )
        for name, doc, value in plain:
            yield GaugeMetricFamily(PREFIX + name, doc, value=value)
        failures = GaugeMetricFamily(
            PREFIX + "source_consecutive_failures",
            "Failed polls in a row, by configured source.",
            labels=["source"],
        )
        for source, count in sorted(snapshot.failures.items()):
            failures.add_metric([source], count)
        yield failures


@dataclass(frozen=True)
class BatchCounts:
    """What the metrics count of one processed batch: items by result, stories opened,
    alerts by rule and kind (small, and sent as it is from a process worker to its daemon)."""

    items: tuple[tuple[str, int], ...]
    created: int
    alerts: tuple[tuple[str, str, int], ...]

    @classmethod
    def of(
        cls, malformed: int, seen: int, placements: Sequence[Placement], alerts: Sequence[Alert]
    ) -> BatchCounts:
        duplicates = sum(1 for p in placements if p.duplicate_of is not None)
        tally = Tally((a.rule, "followup" if a.followup else "first") for a in alerts)
        return cls(
            (
                ("new", len(placements) - duplicates),
                ("duplicate", duplicates),
                ("seen", seen),
                ("malformed", malformed),
            ),
            sum(1 for p in placements if p.new_story),
            tuple((rule, kind, count) for (rule, kind), count in tally.items()),
        )


class Metrics:
    """Every metric of one daemon; the roles call the methods, ``/metrics`` reads ``registry``."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        opts: dict[str, Any] = {"registry": registry}
        self.polls = Counter(
            PREFIX + "polls", "Polls by source and result.", ["source", "result"], **opts
        )
        self.poll_seconds = Histogram(
            PREFIX + "poll_duration_seconds",
            "Wall time of one fetch, by source.",
            ["source"],
            buckets=POLL_BUCKETS,
            **opts,
        )
        self.entries_fetched = Counter(
            PREFIX + "entries_fetched", "Entries found in fetched documents.", ["source"], **opts
        )
        self.entries_new = Counter(
            PREFIX + "entries_new",
            "Entries not seen before, appended to items.",
            ["source"],
            **opts,
        )
        self.items = Counter(
            PREFIX + "items_processed", "Items processed, by result.", ["result"], **opts
        )
        for result in ITEM_RESULTS:
            self.items.labels(result)
        self.match_seconds = Histogram(
            PREFIX + "match_duration_seconds",
            "Time to match one item against every rule.",
            buckets=MATCH_BUCKETS,
            **opts,
        )
        self.stories_created = Counter(
            PREFIX + "stories_created", "Items that opened a new story.", **opts
        )
        self.alerts_raised = Counter(
            PREFIX + "alerts_raised",
            "Alerts put in the outbox by the process role, by rule and kind (first, followup).",
            ["rule", "kind"],
            **opts,
        )
        self.deliveries = Counter(
            PREFIX + "alert_deliveries",
            "Outbox entries handled by the dispatch role, by rule, channel and result.",
            ["rule", "channel", "result"],
            **opts,
        )
        self.rules_loaded = Gauge(PREFIX + "rules_loaded", "Rules in force.", **opts)
        self.reloads = Counter(
            PREFIX + "config_reloads",
            "Configuration reloads, by result (ok, error).",
            ["result"],
            **opts,
        )
        self.last_reload_ok = Gauge(
            PREFIX + "config_last_reload_success",
            "1 when the last load of the configuration succeeded (the start counts), else 0.",
            **opts,
        )
        self.last_reload_time = Gauge(
            PREFIX + "config_last_reload_timestamp_seconds",
            "When the configuration was last loaded or a reload was tried (Unix time).",
            **opts,
        )
        self.redis = RedisCollector()
        registry.register(self.redis)

    # ----------------------------------------------------------------- poll

    def polled(self, source: str, result: FetchResult, new: int, seconds: float) -> None:
        """One finished poll of ``source``: its result, how long it took, what it found."""
        self.polls.labels(source, poll_result(result)).inc()
        self.poll_seconds.labels(source).observe(seconds)
        self.entries_fetched.labels(source).inc(len(result.items))
        self.entries_new.labels(source).inc(new)

    def poll_failed(self, source: str) -> None:
        """A poll that could not finish because Redis failed under it."""
        self.polls.labels(source, "redis").inc()

    # ----------------------------------------------------------------- process

    def processed(
        self,
        *,
        malformed: int,
        seen: int,
        placements: Sequence[Placement],
        alerts: Sequence[Alert],
    ) -> None:
        """One processed batch: what became of its items, and the alerts it raised."""
        self.count_processed(BatchCounts.of(malformed, seen, placements, alerts))

    def count_processed(self, batch: BatchCounts) -> None:
        """A processed batch's counts (counted here, or in a process worker and sent)."""
        for result, count in batch.items:
            if count:
                self.items.labels(result).inc(count)
        if batch.created:
            self.stories_created.inc(batch.created)
        for rule, kind, count in batch.alerts:
            self.alerts_raised.labels(rule, kind).inc(count)

    # ----------------------------------------------------------------- dispatch

    def delivered(
        self, entries: Sequence[tuple[str, Mapping[str, Any]]], outcomes: Sequence[Outcome]
    ) -> None:
        """The outcomes of one dispatched batch, counted by the rule and channel of each entry
        (a digest has no one rule: its ``rule`` label is empty)."""
        payloads = dict(entries)
        tally: Tally[tuple[str, str, str]] = Tally()
        for outcome in outcomes:
            ref = alert_ref(payloads.get(outcome.entry) or {})
            rule = getattr(outcome, "rule", "") or ref.rule
            channel = getattr(outcome, "channel", "") or ref.channel
            tally[(str(rule or ""), str(channel or ""), outcome.state)] += 1
        for labels, count in tally.items():
            self.deliveries.labels(*labels).inc(count)

    # ----------------------------------------------------------------- configuration

    def configured(self, *, ok: bool, rules: int | None, at: float) -> None:
        """A load (``rules`` now in force) or a failed reload (``rules`` None: unchanged)."""
        self.last_reload_ok.set(1 if ok else 0)
        self.last_reload_time.set(at)
        if rules is not None:
            self.rules_loaded.set(rules)

    def reloaded(self, *, ok: bool, rules: int | None, at: float) -> None:
        """A reload of the rules directory, applied or refused."""
        self.reloads.labels("ok" if ok else "error").inc()
        self.configured(ok=ok, rules=rules, at=at)
