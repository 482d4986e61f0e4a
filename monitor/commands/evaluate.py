"""``monitor eval stories``: story grouping measured on labelled news, beside a naive baseline.

Each file's rows are replayed in publication order through the real placement code
(``StoryKeeper``) on a throwaway embedded Redis, the clock following publication time, a batch
at a time as the process role would take them. The grouping is scored pairwise and with
B-cubed (``core.grouping``), twice: every story as placed, and only the confident ties (the ones
that make a rule's match a follow-up). The online TF-IDF baseline is computed in the same run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.app.semantic import available, embedder
from monitor.app.settings import Settings
from monitor.core.grouping import Article, Scores, best_baseline, score
from monitor.errors import ConfigError
from monitor.models import Item
from monitor.ops.progress import SILENT, Progress
from monitor.store import Store
from monitor.store.server import RedisServer
from monitor.store.stories import Embedder, StoryKeeper, story_id

__all__ = ["Evaluation", "Row", "Ties", "evaluate_stories", "read_rows"]

DAY_S = 86400
FIELDS = ("id", "title", "text", "date", "source", "cluster")


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled article as the file gives it."""

    item: Item
    cluster: str

    @property
    def when(self) -> float:
        assert self.item.published is not None
        return self.item.published.timestamp()

    def article(self) -> Article:
        return Article(self.item.id, self.item.title, self.item.text, self.cluster)


@dataclass
class Evaluation:
    """The scores of one file: stories, confident ties only, the baseline, placement speed."""

    path: str
    articles: int
    chunks: int
    stories: Scores
    followups: Scores
    baseline_threshold: float
    baseline: Scores
    sweep: list[tuple[float, Scores]] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    semantic: Scores | None = None
    semantic_followups: Scores | None = None
    semantic_wall_s: float = 0.0
    ties: Ties | None = None
    semantic_ties: Ties | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "articles": self.articles,
            "chunks": self.chunks,
            "stories": self.stories.as_dict(),
            "followups": self.followups.as_dict(),
            "baseline": {"threshold": self.baseline_threshold, **self.baseline.as_dict()},
            "baseline_sweep": [{"threshold": t, **s.as_dict()} for t, s in self.sweep],
            "f1_over_baseline": round(self.stories.f1 - self.baseline.f1, 3),
            "placement_items_per_s": round(self.articles / self.wall_s, 1) if self.wall_s else None,
            "placement_items_per_cpu_s": round(self.articles / self.cpu_s, 1)
            if self.cpu_s
            else None,
            "semantic": self.semantic.as_dict() if self.semantic else None,
            "semantic_followups": self.semantic_followups.as_dict()
            if self.semantic_followups
            else None,
            "semantic_items_per_s": round(self.articles / self.semantic_wall_s, 1)
            if self.semantic_wall_s
            else None,
            "followup_ties": self.ties.as_dict() if self.ties else None,
            "semantic_followup_ties": self.semantic_ties.as_dict() if self.semantic_ties else None,
        }


@dataclass(frozen=True, slots=True)
class Ties:
    """The follow-up decisions themselves: how many items tied confidently to an earlier
    report (duplicates aside), and how many of those reports were of the same event. Each is a
    rule's match that would thread under an earlier alert; a wrong one hides breaking news."""

    ties: int
    right: int

    @classmethod
    def of(cls, ties: Sequence[tuple[str, str]], clusters: dict[str, str]) -> Ties:
        right = sum(clusters[item] == clusters.get(matched) for item, matched in ties)
        return cls(len(ties), right)

    @property
    def precision(self) -> float:
        return self.right / self.ties if self.ties else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"ties": self.ties, "right": self.right, "precision": round(self.precision, 3)}

    def line(self) -> str:
        return (
            f"  {'    follow-up ties':28} {self.ties} items, {self.precision:.3f} of them to a"
            " report of the same event"
        )


def read_rows(path: Path) -> list[Row]:
    """The rows of a labelled JSON-lines file, in publication order; ``ConfigError`` naming
    the line of the first row that cannot be read."""
    rows: list[Row] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                missing = [name for name in FIELDS if not isinstance(data.get(name), str)]
                if missing:
                    raise ValueError(f"missing or not a string: {', '.join(missing)}")
                published = datetime.fromisoformat(data["date"])
            except ValueError as exc:  # JSONDecodeError is a ValueError
                raise ConfigError(f"{path}:{number}: {exc}") from exc
            if published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
            item = Item(
                id=data["id"],
                source=data["source"],
                title=data["title"],
                text=data["text"],
                url=data.get("url") or None,
                published=published,
            )
            rows.append(Row(item, data["cluster"]))
    rows.sort(key=lambda row: row.when)
    return rows


def chunked(rows: Sequence[Row], days: int) -> list[list[Row]]:
    """Rows cut into runs of ``days`` days from the first one (0: one run)."""
    if not rows or days <= 0:
        return [list(rows)]
    start = rows[0].when
    runs: dict[int, list[Row]] = {}
    for row in rows:
        runs.setdefault(int((row.when - start) // (days * DAY_S)), []).append(row)
    return [runs[key] for key in sorted(runs)]


@dataclass
class _Placed:
    grouped: dict[str, str] = field(default_factory=dict)
    confident: dict[str, str] = field(default_factory=dict)
    ties: list[tuple[str, str]] = field(default_factory=list)  # (item, matched): follow-ups
    wall_s: float = 0.0
    cpu_s: float = 0.0


async def _place_all(
    client: Any,
    name: str,
    chunks: Sequence[Sequence[Row]],
    settings: Settings,
    batch: int,
    embed: Embedder | None,
    advance: Callable[[int], None],
) -> _Placed:
    """Every chunk through a fresh story store on ``client``, a batch at a time."""
    placed = _Placed()
    for index, chunk in enumerate(chunks):
        store = Store(client, prefix=f"eval:{name}:{index}:")
        keeper = StoryKeeper(
            store, window_s=settings.story_window, ttl_s=settings.dedup_ttl, embed=embed
        )
        for start in range(0, len(chunk), batch):
            run = chunk[start : start + batch]
            started, started_cpu = time.perf_counter(), time.process_time()
            placements = await keeper.place([r.item for r in run], run[-1].when)
            placed.wall_s += time.perf_counter() - started
            placed.cpu_s += time.process_time() - started_cpu
            for row, where in zip(run, placements, strict=True):
                placed.grouped[row.item.id] = where.story
                sure = where.confident or where.duplicate_of is not None
                placed.confident[row.item.id] = where.story if sure else story_id(row.item.id)
                if where.confident and where.duplicate_of is None and where.matched:
                    placed.ties.append((row.item.id, where.matched))
            advance(len(run))
    return placed


async def evaluate_stories(
    settings: Settings,
    paths: Sequence[Path],
    *,
    chunk_days: int = 0,
    batch: int = 100,
    semantic: bool | None = None,
    progress: Progress = SILENT,
) -> list[Evaluation]:
    """Score story grouping on each labelled file (see the module docstring). ``semantic``:
    also place with sentence embeddings (None: when the extra is installed)."""
    use_semantic = available() if semantic is None else semantic
    embed = embedder() if use_semantic else None
    results = []
    async with RedisServer.embedded() as client:
        for path in paths:
            rows = read_rows(path)
            chunks = chunked(rows, chunk_days)
            with progress.task(f"placing {path.name}", total=len(rows)) as advance:
                lexical = await _place_all(
                    client, f"{path.name}:lexical", chunks, settings, batch, None, advance
                )
            articles = [[row.article() for row in chunk] for chunk in chunks]
            threshold, base, sweep = best_baseline(articles)
            clusters = {row.item.id: row.cluster for row in rows}
            evaluation = Evaluation(
                path=str(path),
                articles=len(rows),
                chunks=len(chunks),
                stories=score(articles, lexical.grouped),
                followups=score(articles, lexical.confident),
                baseline_threshold=threshold,
                baseline=base,
                sweep=sweep,
                wall_s=lexical.wall_s,
                cpu_s=lexical.cpu_s,
                ties=Ties.of(lexical.ties, clusters),
            )
            if embed is not None:
                with progress.task(f"placing {path.name} (semantic)", total=len(rows)) as advance:
                    blended = await _place_all(
                        client, f"{path.name}:semantic", chunks, settings, batch, embed, advance
                    )
                evaluation.semantic = score(articles, blended.grouped)
                evaluation.semantic_followups = score(articles, blended.confident)
                evaluation.semantic_wall_s = blended.wall_s
                evaluation.semantic_ties = Ties.of(blended.ties, clusters)
            results.append(evaluation)
    return results


def report(evaluation: Evaluation) -> list[str]:
    """The lines ``monitor eval stories`` prints for one file."""

    def line(name: str, s: Scores) -> str:
        return (
            f"  {name:28} {s.precision:.3f} / {s.recall:.3f} / {s.f1:.3f}"
            f"    {s.bcubed_precision:.3f} / {s.bcubed_recall:.3f} / {s.bcubed_f1:.3f}"
        )

    e = evaluation
    rate = f"{e.articles / e.wall_s:,.0f} items/s" if e.wall_s else "-"
    per_cpu = f"{e.articles / e.cpu_s:,.0f} items per CPU-second" if e.cpu_s else "-"
    semantic = (
        [
            line("with the semantic extra", e.semantic),
            line("  confident ties (follow-ups)", e.semantic_followups),
            *([e.semantic_ties.line()] if e.semantic_ties else []),
            f"  semantic placement: {e.articles / e.semantic_wall_s:,.0f} items/s wall",
        ]
        if e.semantic and e.semantic_followups and e.semantic_wall_s
        else ["  semantic extra: not installed (pip install 'newsmonitor[semantic]')"]
    )
    return [
        f"{e.path}: {e.articles} articles in {e.chunks} chunk(s), "
        f"{e.stories.true_pairs} same-event pairs",
        f"  {'':28} pairwise P / R / F1        B-cubed P / R / F1",
        line("newsmonitor stories", e.stories),
        line("  confident ties (follow-ups)", e.followups),
        *([e.ties.line()] if e.ties else []),
        line(f"baseline TF-IDF (t={e.baseline_threshold:.2f})", e.baseline),
        f"  F1 over the baseline: {e.stories.f1 - e.baseline.f1:+.3f}",
        f"  placement: {rate} wall, {per_cpu} (this process; Redis excluded)",
        *semantic,
    ]
