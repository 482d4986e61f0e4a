"""``monitor rules test``: which rules match each file, and on which words (no dedup, no state)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from monitor.commands.replay import source_for
from monitor.core.matcher import Matcher
from monitor.core.rules import WatchConfig
from monitor.models import Item, Match, RuleMatch
from monitor.sources.replay import read_items

__all__ = ["RuleTestRow", "Tried", "explain", "try_rules"]


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


def try_rules(config: WatchConfig, path: Path) -> tuple[Iterator[Tried], list[str]]:
    """The items of ``path`` tried on every rule, and the files or entries that were skipped."""
    matcher = Matcher(config.rules)
    items, problems = read_items(path, source_for(path, config))
    every = {r.id for r in config.rules}

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
