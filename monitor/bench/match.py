"""``monitor bench``: synthetic throughputs, each beside a baseline, on deterministic workloads.

Matching (the default): ``rules`` rules built from multi-word names and phrases
(``"name" AND (word OR "two words")``, ``"phrase" NEAR/5 word``, ``@entity`` with aliases), and
``items`` articles of about 600 words that mention a few of the names. The baseline is what a
simple tool does: one compiled regex per rule (lookaheads for AND), tried on every item's
normalized text. Both must find the same matches, or the run says so.

Parsing (``--parse``): RSS and Atom documents with realistic HTML entries, parsed by
``parse_feed`` and by feedparser with its defaults (sanitizer and relative-URI rewriting on)
followed by the very same per-entry extraction: the same output, two parser configurations.

Sources (``--sources``): the daemon's poll path (``Poller``, ``FeedSource``, the shared client,
embedded Redis) against a local feed server in a child process, where most feeds answer 304.
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import random
import re
import resource
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.bench.feeds import FeedServerProcess, feed_document
from monitor.core.dedup import fingerprint, strip_boilerplate
from monitor.core.frequencies import background_for
from monitor.core.matcher import Matcher
from monitor.core.polling import PollSpec
from monitor.core.rules import build_config
from monitor.core.stories import term_vector
from monitor.core.text import normalize, tokenize
from monitor.http import FetchLimits, make_client
from monitor.models import Item
from monitor.ops.progress import SILENT, Advance, Progress
from monitor.roles.poll import Poller, Scheduled
from monitor.sources.feed import (  # the private three: parse_feed's per-entry extraction
    FeedSource,
    _detail_language,
    _entry_item,
    _str,
    parse_feed,
)
from monitor.store import Store
from monitor.store.server import RedisServer

WORDS_PER_ITEM = 600
NAMES_PER_ITEM = 6


def _word(rng: random.Random) -> str:
    syllables = ["ka", "lo", "mi", "tren", "vos", "dar", "el", "qui", "sta", "ber", "on", "gal"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))


@dataclass(frozen=True)
class Workload:
    yaml: str
    items: tuple[Item, ...]
    rule_terms: tuple[tuple[tuple[str, ...], ...], ...]  # per rule: AND of OR-groups of phrases


def make_workload(rule_count: int, item_count: int, seed: int) -> Workload:
    """Rules and articles over one invented vocabulary, so nothing depends on a corpus file."""
    rng = random.Random(seed)
    vocabulary = sorted({_word(rng) for _ in range(6000)})
    common, rare = vocabulary[:300], vocabulary[300:]
    names = [f"{rng.choice(rare).title()} {rng.choice(rare).title()}" for _ in range(20000)]
    lines = ["entities:"]
    rules = ["rules:"]
    terms: list[tuple[tuple[str, ...], ...]] = []
    for index in range(rule_count):
        name = names[index % len(names)]
        other, extra = rng.choice(rare), f"{rng.choice(rare)} {rng.choice(rare)}"
        kind = index % 3
        if kind == 0:
            query = f'"{name}" AND ({other} OR "{extra}")'
            terms.append(((name,), (other, extra)))
        elif kind == 1:
            lines.append(f'  e{index}: {{aliases: ["{name}", "{name.split()[1]} {other}"]}}')
            query = f"@e{index} AND {rng.choice(rare)}"
            terms.append(((name, f"{name.split()[1]} {other}"), (query.rsplit(" ", 1)[1],)))
        else:
            query = f'"{name}" AND "{extra}"'
            terms.append(((name,), (extra,)))
        rules.append(f"  - {{id: r{index}, query: '{query}'}}")
    yaml_text = "\n".join([*(lines if len(lines) > 1 else []), *rules]) + "\n"
    items = []
    for index in range(item_count):
        words = [
            rng.choice(common) if rng.random() < 0.7 else rng.choice(rare)
            for _ in range(WORDS_PER_ITEM)
        ]
        for _ in range(NAMES_PER_ITEM):
            words.insert(rng.randrange(len(words)), rng.choice(names[: max(rule_count, 1)]))
        text = ". ".join(" ".join(words[i : i + 15]).capitalize() for i in range(0, len(words), 15))
        items.append(
            Item(id=f"bench:{index}", source="bench", title=" ".join(words[:8]), text=text)
        )
    return Workload(yaml_text, tuple(items), tuple(terms))


def baseline_patterns(workload: Workload) -> list[re.Pattern[str]]:
    """One regex per rule: a lookahead per AND-ed group, alternation inside a group."""
    patterns = []
    for groups in workload.rule_terms:
        parts = []
        for group in groups:
            alternatives = "|".join(re.escape(normalize(phrase)) for phrase in group)
            parts.append(rf"(?=.*?\b(?:{alternatives})\b)")
        patterns.append(re.compile("".join(parts), re.DOTALL))
    return patterns


def _rate(
    count: int, run: Callable[[], object], repeat: int, advance: Advance | None = None
) -> tuple[float, object]:
    timings = []
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - start)
        if advance is not None:
            advance(1)
    return count / statistics.median(timings), result


def run_bench(
    rule_count: int,
    item_count: int,
    *,
    repeat: int = 5,
    seed: int = 1,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Items per second for normalize, match (automaton) and the regex baseline; medians."""
    baseline_repeat = max(1, repeat // 2)
    with progress.task(f"{rule_count} rules", total=2 + 4 * repeat + baseline_repeat) as advance:
        return _run_bench(rule_count, item_count, repeat, baseline_repeat, seed, advance)


def _run_bench(
    rule_count: int,
    item_count: int,
    repeat: int,
    baseline_repeat: int,
    seed: int,
    advance: Advance,
) -> dict[str, Any]:
    workload = make_workload(rule_count, item_count, seed)
    config = build_config([("bench.yaml", workload.yaml)], {})
    advance(1)
    started = time.perf_counter()
    matcher = Matcher(config.rules)
    build_s = time.perf_counter() - started
    advance(1)
    items = workload.items
    texts = [f"{item.title}\n{item.text}" for item in items]

    normalize_rate, _ = _rate(len(items), lambda: [tokenize(t) for t in texts], repeat, advance)
    # Dedup works on the text without boilerplate, tokenized once (the normalize stage).
    background = background_for("en")
    cleaned = [strip_boilerplate(item.text) for item in items]
    tokens = [tokenize(text) for text in cleaned]
    fingerprint_rate, _ = _rate(
        len(items), lambda: [fingerprint(t.words) for t in tokens], repeat, advance
    )
    vector_rate, _ = _rate(
        len(items),
        lambda: [
            term_vector(i.title, c, background, text_tokens=t)
            for i, c, t in zip(items, cleaned, tokens, strict=True)
        ],
        repeat,
        advance,
    )
    match_rate, found = _rate(
        len(items), lambda: [{m.rule for m in matcher.match(i)} for i in items], repeat, advance
    )
    patterns = baseline_patterns(workload)
    # The baseline is slow by design: give it fewer items at large rule counts (rates compare).
    baseline_items = items[: max(5, min(len(items), len(items) * 200 // max(rule_count, 1)))]

    def baseline() -> list[set[str]]:
        out = []
        for item in baseline_items:
            title, text = normalize(item.title), normalize(item.text)
            out.append({f"r{i}" for i, p in enumerate(patterns) if p.match(title) or p.match(text)})
        return out

    baseline_rate, baseline_found = _rate(len(baseline_items), baseline, baseline_repeat, advance)
    matched = found if isinstance(found, list) else []
    agree = matched[: len(baseline_items)] == baseline_found
    return {
        "rules": rule_count,
        "items": len(items),
        "baseline_items": len(baseline_items),
        "repeat": repeat,
        "terms": matcher.term_count,
        "build_s": round(build_s, 3),
        "normalize_items_per_s": round(normalize_rate, 1),
        "fingerprint_items_per_s": round(fingerprint_rate, 1),
        "story_terms_items_per_s": round(vector_rate, 1),
        "match_items_per_s": round(match_rate, 1),
        "baseline_match_items_per_s": round(baseline_rate, 2),
        "speedup": round(match_rate / baseline_rate, 1),
        "matches_per_item": round(sum(len(s) for s in matched) / max(len(matched), 1), 2),
        "baseline_agrees": agree,
        "machine": machine(),
        "python": platform.python_version(),
    }


def report(results: Sequence[dict[str, Any]]) -> str:
    """A table of the runs, then how match throughput changes from the first to the last."""
    head = (
        f"{'rules':>7} {'items':>6} {'normalize/s':>12} {'fingerprint/s':>14} {'terms/s':>8} "
        f"{'match/s':>9} {'baseline/s':>11} {'speedup':>8} {'agree':>6}"
    )
    rows = [head]
    for r in results:
        rows.append(
            f"{r['rules']:>7} {r['items']:>6} {r['normalize_items_per_s']:>12.0f} "
            f"{r['fingerprint_items_per_s']:>14.0f} {r['story_terms_items_per_s']:>8.0f} "
            f"{r['match_items_per_s']:>9.0f} {r['baseline_match_items_per_s']:>11.2f} "
            f"{r['speedup']:>7.0f}x {'yes' if r['baseline_agrees'] else 'NO':>6}"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        slowdown = first["match_items_per_s"] / last["match_items_per_s"]
        rows.append(f"match slows {slowdown:.2f}x from {first['rules']} to {last['rules']} rules")
    machine = results[0] if results else {"machine": "?", "python": "?"}
    rows.append(
        f"medians of {results[0]['repeat'] if results else 0} runs; "
        f"{machine['machine']}, Python {machine['python']}"
    )
    return "\n".join(rows)


def machine() -> str:
    """Architecture, CPU model and CPU count, as the figures should be quoted."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [platform.machine(), model, f"{os.cpu_count() or '?'} CPUs"]
    return ", ".join(part for part in parts if part)


def max_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB, macOS B)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if platform.system() == "Darwin" else peak / 1024


# --- parsing ------------------------------------------------------------------------------

PARSE_SOURCE = "bench"
PARSE_NOW = datetime(2025, 1, 1, tzinfo=UTC)  # after every synthetic entry's date


def parse_workload(documents: int, entries: int, seed: int) -> list[tuple[str, bytes]]:
    """``documents`` feeds (RSS and Atom alternately) of ``entries`` entries, with their URLs."""
    return [
        (f"https://site{n}.example/feed", feed_document(seed, n, entries=entries))
        for n in range(documents)
    ]


def baseline_parse(data: bytes, source: str, url: str, now: datetime) -> tuple[Item, ...]:
    """feedparser with its defaults (HTML sanitizer, relative URIs resolved against the
    document's location), then exactly the per-entry extraction ``parse_feed`` does."""
    parsed = feedparser.parse(io.BytesIO(data), response_headers={"content-location": url})
    language = _str(parsed.feed.get("language")) or _detail_language(parsed.feed, "title")
    rss = not str(parsed.get("version") or "").startswith("atom")
    return tuple(_entry_item(entry, source, url, language, now, rss) for entry in parsed.entries)


def run_parse_bench(
    documents: int, entries: int, *, repeat: int = 5, seed: int = 1, progress: Progress = SILENT
) -> dict[str, Any]:
    """Entries per second of ``parse_feed`` and of the feedparser-defaults baseline, medians of
    ``repeat`` runs taken alternately (so drift in the machine hits both alike)."""
    with progress.task("parse runs", total=max(1, repeat)) as advance:
        return _run_parse_bench(documents, entries, repeat, seed, advance)


def _run_parse_bench(
    documents: int, entries: int, repeat: int, seed: int, advance: Advance
) -> dict[str, Any]:
    workload = parse_workload(documents, entries, seed)
    ours_s: list[float] = []
    baseline_s: list[float] = []
    ours: list[Item] = []
    theirs: list[Item] = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        ours = [
            item
            for url, data in workload
            for item in parse_feed(data, PARSE_SOURCE, url, now=PARSE_NOW).items
        ]
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = [
            item
            for url, data in workload
            for item in baseline_parse(data, PARSE_SOURCE, url, PARSE_NOW)
        ]
        baseline_s.append(time.perf_counter() - started)
        advance(1)
    rate = len(ours) / statistics.median(ours_s)
    baseline_rate = len(theirs) / statistics.median(baseline_s)
    return {
        "documents": documents,
        "entries": len(ours),
        "baseline_entries": len(theirs),
        "identical_items": sum(a == b for a, b in zip(ours, theirs, strict=False)),
        "bytes": sum(len(data) for _, data in workload),
        "repeat": max(1, repeat),
        "parse_entries_per_s": round(rate, 1),
        "baseline_parse_entries_per_s": round(baseline_rate, 1),
        "ratio": round(rate / baseline_rate, 2),
        "machine": machine(),
        "python": platform.python_version(),
        "feedparser": str(feedparser.__version__),
    }


def parse_report(result: dict[str, Any]) -> str:
    """The two rates side by side, the ratio, and what was measured on what."""
    return "\n".join(
        [
            f"parse: {result['documents']} documents (RSS 2.0 and Atom alternately), "
            f"{result['entries']} entries, {result['bytes'] / 1e6:.1f} MB; "
            f"medians of {result['repeat']} runs",
            f"  parse_feed (sanitize_html=False, resolve_relative_uris=False, selectolax text)"
            f"  {result['parse_entries_per_s']:>9.0f} entries/s",
            f"  feedparser defaults + the same extraction (baseline)"
            f"{'':>30}{result['baseline_parse_entries_per_s']:>9.0f} entries/s",
            f"  ratio {result['ratio']:.2f}x (the issue asks for at least 2x); "
            f"{result['identical_items']} of {result['entries']} items identical, "
            f"baseline gave {result['baseline_entries']} entries",
            f"  {result['machine']}, Python {result['python']}, feedparser {result['feedparser']}",
        ]
    )


# --- sources ------------------------------------------------------------------------------


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
