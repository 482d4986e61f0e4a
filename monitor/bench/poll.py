"""``monitor bench poll``: one poll cycle of the daemon against a local feed server.

The daemon's poll path (``Poller``, ``FeedSource``, the shared client, embedded Redis) against a
feed server in a child process, where most feeds answer 304.
"""

from __future__ import annotations

import asyncio
import platform
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import feedparser

from monitor.bench.feeds import FeedServerProcess
from monitor.bench.machine import machine, max_rss_mib
from monitor.core.polling import PollSpec
from monitor.http import FetchLimits, make_client
from monitor.ops.progress import SILENT, Advance, Progress
from monitor.roles.poll import Poller, Scheduled
from monitor.sources.feed import FeedSource
from monitor.store import Store
from monitor.store.server import RedisServer


class FeedparserCalls:
    """Counts calls of ``feedparser.parse`` while ``active()`` (``with calls.active():``);
    parses run in worker threads, hence the lock."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    @contextmanager
    def active(self) -> Iterator[FeedparserCalls]:
        """Wrap ``feedparser.parse`` (looked up at call time by ``parse_feed``) until exit."""
        original = feedparser.parse

        def counting(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            return original(*args, **kwargs)

        feedparser.parse = counting
        try:
            yield self
        finally:
            feedparser.parse = original

    def take(self) -> int:
        """The calls counted since the last ``take``."""
        with self._lock:
            count, self.count = self.count, 0
        return count


@dataclass(frozen=True, slots=True)
class Cycle:
    """One poll of every source: how long it took and how the sources answered."""

    seconds: float
    statuses: Counter[str]
    not_modified: int
    entries: int
    errors: tuple[str, ...]


async def poll_cycle(
    poller: Poller, in_flight: int | None = None, advance: Advance | None = None
) -> Cycle:
    """Every source polled once, now, concurrently, as ``Poller.poll_all`` does, or at most
    ``in_flight`` polls at a time; only a summary of each result is kept (holding every parsed
    item would inflate the memory measured). ``advance(1)`` after each poll."""
    bound = asyncio.Semaphore(in_flight) if in_flight else None

    async def one(scheduled: Scheduled) -> tuple[str, bool, int, str | None]:
        if bound is None:
            result = await poller.poll(scheduled, force=True)
        else:
            async with bound:
                result = await poller.poll(scheduled, force=True)
        if advance is not None:
            advance(1)
        if result is None:
            return "not polled", False, 0, f"{scheduled.id}: not polled"
        error = f"{scheduled.id}: {result.error}" if result.error else None
        return str(result.status), result.not_modified, len(result.items), error

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(s) for s in poller.sources))
    seconds = time.perf_counter() - started
    return Cycle(
        seconds=seconds,
        statuses=Counter(status for status, _, _, _ in outcomes),
        not_modified=sum(not_modified for _, not_modified, _, _ in outcomes),
        entries=sum(entries for _, _, entries, _ in outcomes),
        errors=tuple(error for _, _, _, error in outcomes if error),
    )


def run_sources_bench(
    feeds: int,
    *,
    entries: int = 25,
    ports: int = 50,
    seed: int = 1,
    changed_share: float = 0.05,
    in_flight: int | None = None,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """A warm-up cycle (every feed 200), then one measured cycle where all but
    ``changed_share`` of the feeds answer 304; the daemon's fetch limits throughout. Every
    poll starts at once, as in ``monitor run --once``, unless ``in_flight`` bounds them."""
    return asyncio.run(
        _sources_bench(feeds, entries, ports, seed, changed_share, in_flight, progress)
    )


async def _sources_bench(
    feeds: int,
    entries: int,
    ports: int,
    seed: int,
    changed_share: float,
    in_flight: int | None,
    progress: Progress,
) -> dict[str, Any]:
    limits = FetchLimits()  # the daemon's defaults: 2 requests per host, 100 in all
    rss_before = max_rss_mib()
    calls = FeedparserCalls()
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            FeedServerProcess(
                feeds, entries=entries, ports=ports, seed=seed, changed_share=changed_share
            )
        )
        redis = await stack.enter_async_context(RedisServer.embedded())
        http = make_client(limits, trust_env=False)  # no proxy: 127.0.0.1 and nothing else
        stack.push_async_callback(http.aclose)
        store = Store(redis)
        poller = Poller(
            store,
            [
                Scheduled(
                    FeedSource(f"bench-{n}", server.url(n), http, limits), PollSpec(300, 60, 3600)
                )
                for n in range(feeds)
            ],
            owner="bench",
        )
        stack.enter_context(calls.active())
        with progress.task("warm-up cycle", total=feeds) as advance:
            warmup = await poll_cycle(poller, in_flight, advance)
        warmup_calls = calls.take()
        warmup_served = await server.next_cycle()
        with progress.task("measured cycle", total=feeds) as advance:
            cycle = await poll_cycle(poller, in_flight, advance)
        cycle_calls = calls.take()
        served = await server.next_cycle()
        changed = len(server.changed)
    return {
        "feeds": feeds,
        "ports": ports,
        "per_host": limits.per_host,
        "max_connections": limits.max_connections,
        "entries_per_feed": entries,
        "in_flight": in_flight,
        "changed": changed,
        "warmup_s": round(warmup.seconds, 3),
        "warmup_statuses": dict(warmup.statuses),
        "warmup_feedparser_calls": warmup_calls,
        "warmup_requests": sum(warmup_served["served"].values()),
        "cycle_s": round(cycle.seconds, 3),
        "feeds_per_s": round(feeds / cycle.seconds, 1),
        "not_modified": cycle.not_modified,
        "statuses": dict(cycle.statuses),
        "entries_parsed": cycle.entries,
        "feedparser_calls": cycle_calls,
        "requests": sum(served["served"].values()),
        "errors": len(cycle.errors) + len(warmup.errors),
        "error_examples": [*warmup.errors, *cycle.errors][:5],
        "max_rss_mib": round(max_rss_mib(), 1),
        "max_rss_mib_before": round(rss_before, 1),
        "machine": machine(),
        "python": platform.python_version(),
    }


def sources_report(result: dict[str, Any]) -> str:
    """The measured cycle first, then the warm-up and the setting it ran in."""
    lines = [
        f"sources: {result['feeds']} feeds on {result['ports']} ports of 127.0.0.1 "
        f"(per_host {result['per_host']}, max_connections {result['max_connections']}: "
        f"the daemon's defaults), {result['entries_per_feed']} entries each; "
        f"{result['changed']} change every cycle; "
        + (
            f"at most {result['in_flight']} polls in flight"
            if result["in_flight"]
            else "every poll started at once (as monitor run --once)"
        ),
        f"  cycle: {result['cycle_s']:.2f} s, {result['feeds_per_s']:.0f} feeds/s; "
        f"{result['not_modified']} answered 304, statuses {result['statuses']}, "
        f"{result['requests']} requests",
        f"  feedparser calls in the cycle: {result['feedparser_calls']} "
        f"(changed feeds: {result['changed']}); entries parsed: {result['entries_parsed']}",
        f"  warm-up: {result['warmup_s']:.2f} s, statuses {result['warmup_statuses']}, "
        f"{result['warmup_feedparser_calls']} feedparser calls",
        f"  peak resident memory: {result['max_rss_mib']:.0f} MiB for this process "
        f"({result['max_rss_mib_before']:.0f} MiB before the bench; Redis and the feed server "
        "run in processes of their own)",
        f"  errors: {result['errors']}"
        + (
            " (failed polls: the figures above do not measure a working cycle)"
            if result["errors"]
            else ""
        ),
        *(f"    {example}" for example in result["error_examples"]),
        f"  {result['machine']}, Python {result['python']}",
    ]
    return "\n".join(lines)
