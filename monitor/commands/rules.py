"""``monitor rules test``: which rules match each file, an item on stdin, or the items that came
in lately (the history), and on which words. Trying rules changes nothing: no dedup, no claims.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server
from monitor.commands.replay import source_for
from monitor.core.config import parse_duration
from monitor.core.matcher import Matcher
from monitor.core.rules import Rule, WatchConfig
from monitor.models import Item, Match, RuleMatch
from monitor.roles.backfill import Backfilled, backfill
from monitor.sources.replay import read_items
from monitor.store import Store
from monitor.store.history import Recent

__all__ = [
    "History",
    "RuleTestRow",
    "Tried",
    "backfill_rule",
    "explain",
    "item_from_stdin",
    "read_history",
    "try_history",
    "try_rules",
]


class RuleTestRow(TypedDict):
    """One item as ``rules test --json`` prints it."""

    path: str
    item: str
    title: str
    rules: list[str]
    matches: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Tried:
    """One item of one file with the rules that matched it and those that did not."""

    shown: str
    item: Item
    results: Sequence[RuleMatch]
    missed: Sequence[str]

    def row(self) -> RuleTestRow:
        return {
            "path": self.shown,
            "item": self.item.id,
            "title": self.item.title,
            "rules": sorted(r.rule for r in self.results),
            "matches": {
                r.rule: [
                    {**m.to_dict(), "text": self.item.field(m.field)[m.start : m.end]}
                    for m in r.matches
                ]
                for r in self.results
            },
        }


def _chosen(config: WatchConfig, rules: Collection[str]) -> list[Rule]:
    """The rules named in ``rules`` (all of them when none is)."""
    return [r for r in config.rules if not rules or r.id in rules]


def try_rules(
    config: WatchConfig, path: Path, stdin: str = "", rules: Collection[str] = ()
) -> tuple[Iterator[Tried], list[str]]:
    """The items of ``path`` (``-``: the item in ``stdin``) tried on every rule (those in
    ``rules``, or all), and the files or entries that were skipped."""
    chosen = _chosen(config, rules)
    matcher = Matcher(chosen)
    if str(path) == "-":
        items, problems = [item_from_stdin(stdin)], list[str]()
    else:
        items, problems = read_items(path, source_for(path, config))
    every = {r.id for r in chosen}

    def tried() -> Iterator[Tried]:
        for item in items:
            shown = str(path / item.path) if path.is_dir() and item.path else str(path)
            results = matcher.match(item)
            missed = sorted(every - {r.rule for r in results})
            yield Tried(shown, item, results, missed)

    return tried(), problems


def explain(item: Item, matches: Sequence[Match]) -> str:
    """Each term once: what it matched first, where, and how often."""
    by_term: dict[str, list[Match]] = {}
    for match in matches:
        by_term.setdefault(match.term, []).append(match)
    parts = []
    for term, found in by_term.items():
        first = found[0]
        text = item.field(first.field)[first.start : first.end]
        times = f" ×{len(found)}" if len(found) > 1 else ""
        parts.append(f"{term} → {text!r} ({first.field} {first.start}-{first.end}){times}")
    return ", ".join(parts) or "(matched by absence: NOT terms only)"


def item_from_stdin(text: str) -> Item:
    """The item given on stdin: a JSON object (an item as ``--json`` outputs print it, only
    ``title`` and ``text`` needed) or plain text (its first line the title)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        data = json.loads(stripped)
        if not isinstance(data, dict):
            raise ValueError("stdin: a JSON item must be an object")
        return Item.from_dict({"id": "stdin", "source": "stdin", **data})
    title, _, body = stripped.partition("\n")
    return Item(id="stdin", source="stdin", title=title.strip(), text=body.strip())


@dataclass
class History:
    """What the history held from a time on: the items, how far back it reaches in all, and
    entries that could not be read."""

    items: list[Recent]
    kept: int
    oldest: float | None
    problems: list[str] = field(default_factory=list)

    def reach(self, keep_s: int) -> str:
        """One line saying how far back the history reaches, for the user."""
        if self.oldest is None:
            return "history: empty (the process role keeps MONITOR_HISTORY of items)"
        oldest = datetime.fromtimestamp(self.oldest, UTC).isoformat(timespec="seconds")
        return (
            f"history: {self.kept} items since {oldest} (keeps {keep_s // 3600}h); "
            f"{len(self.items)} in the window asked"
        )


async def _history(store: Store, since: float) -> History:
    problems: list[str] = []
    items = await store.history.since(since, problems)
    kept, oldest = await store.history.reach()
    return History(items, kept, oldest, problems)


async def read_history(settings: Settings, since: float) -> History:
    """The history's items from ``since`` (seconds since the epoch) on."""
    async with redis_server(settings) as client:
        return await _history(open_store(client, settings), since)


@dataclass(frozen=True, slots=True)
class RuleRun:
    """One rule tried on the history: the items it matched, each with its match."""

    rule: str
    found: list[tuple[Recent, RuleMatch]]


def try_history(
    config: WatchConfig, items: Sequence[Recent], rules: Collection[str] = ()
) -> tuple[list[RuleRun], Counter[str]]:
    """Each rule (those in ``rules``, or all) over the items, duplicates left out as they
    would never alert; and how many items were tried and skipped."""
    chosen = _chosen(config, rules)
    matcher = Matcher(chosen)
    found: dict[str, list[tuple[Recent, RuleMatch]]] = {r.id: [] for r in chosen}
    counts: Counter[str] = Counter()
    for recent in items:
        if recent.duplicate_of is not None:
            counts["duplicates"] += 1
            continue
        counts["tried"] += 1
        results = matcher.match(recent.item)
        counts["matched"] += bool(results)
        for result in results:
            found[result.rule].append((recent, result))
    return [RuleRun(rule, hits) for rule, hits in found.items()], counts


def file_lines(tried: Iterator[Tried], *, as_json: bool, matches_only: bool) -> Iterator[str]:
    """What ``rules test FILE…`` prints for each item."""
    for one in tried:
        if matches_only and not one.results:
            continue
        if as_json:
            yield json.dumps(one.row(), ensure_ascii=False)
            continue
        yield f"{one.shown}: {one.item.title}"
        for result in one.results:
            yield f"  ✔ {result.rule}: {explain(one.item, result.matches)}"
        if one.missed and not matches_only:
            yield f"  ✘ {', '.join(one.missed)}"


def history_lines(
    runs: Sequence[RuleRun], counts: Counter[str], *, as_json: bool, matches_only: bool
) -> Iterator[str]:
    """What ``rules test --since`` prints: per rule, its count and the items it matched with
    the words that made it match; then a summary line."""
    for run in runs:
        if matches_only and not run.found:
            continue
        if as_json:
            for recent, result in run.found:
                row = Tried("history", recent.item, [result], []).row()
                yield json.dumps(
                    {**row, "rule": run.rule, "story": recent.story}, ensure_ascii=False
                )
            continue
        yield f"{run.rule}: {len(run.found)} item{'s' if len(run.found) != 1 else ''}"
        for recent, result in run.found:
            when = datetime.fromtimestamp(recent.seen, UTC).isoformat(timespec="seconds")
            yield f"  {when} {recent.item.source}: {recent.item.title}"
            yield f"    {explain(recent.item, result.matches)}"
    summary = {
        "tried": counts["tried"],
        "matched": counts["matched"],
        "duplicates_skipped": counts["duplicates"],
        "rules": {run.rule: len(run.found) for run in runs},
    }
    if as_json:
        yield json.dumps({"summary": summary})
    else:
        yield (
            f"{summary['tried']} items tried ({summary['duplicates_skipped']} duplicates "
            f"left out), {summary['matched']} matched by at least one rule"
        )


def rule_test_lines(
    settings: Settings,
    config: WatchConfig,
    paths: Sequence[Path],
    stdin: str,
    *,
    since: str | None,
    only: Sequence[str],
    matches_only: bool,
    as_json: bool,
) -> Iterator[tuple[str, bool]]:
    """Each line ``rules test`` prints, and whether it goes to stderr. ValueError for a rule
    id the rules do not have or a duration that is not one."""
    if unknown := sorted(set(only) - {r.id for r in config.rules}):
        raise ValueError(f"no rule {', '.join(unknown)} in the rules")
    start = time.time() - parse_duration(since) if since is not None else None
    for path in paths:
        tried, problems = try_rules(config, path, stdin, only)
        for problem in problems:
            yield f"skipped {problem}", True
        for line in file_lines(tried, as_json=as_json, matches_only=matches_only):
            yield line, False
    if start is not None:
        found = asyncio.run(read_history(settings, start))
        yield found.reach(settings.history), True
        for problem in found.problems:
            yield f"skipped {problem}", True
        runs, counts = try_history(config, found.items, only)
        for line in history_lines(runs, counts, as_json=as_json, matches_only=matches_only):
            yield line, False


async def backfill_rule(
    settings: Settings, config: WatchConfig, rule_id: str, since: str
) -> tuple[Backfilled, History]:
    """Rule ``rule_id`` run over the history since ``since`` ago, its new stories alerted
    through the process role's claims. ValueError for an unknown rule or a bad duration."""
    rule = next((r for r in config.rules if r.id == rule_id), None)
    if rule is None:
        raise ValueError(f"no rule {rule_id} in the rules")
    start = time.time() - parse_duration(since)
    async with redis_server(settings) as client:
        store = open_store(client, settings)
        found = await _history(store, start)
        done = await backfill(store, rule, found.items, datetime.now(UTC))
    return done, found
