"""Precision and recall of duplicate (level 2) and story (level 3) detection on labelled pairs.

Each pair is judged the way the process role would judge the second article after the first:
a duplicate must be *found* (an LSH band in common, or the same story, whose latest items are
checked) and then pass ``is_duplicate``; a story must be found through a shared index term, be
close enough, and lie within the story window. MinHash and SimHash are measured side by side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.core.analysis import strip_boilerplate
from monitor.core.dedup import (
    SIMHASH_DISTANCE,
    Fingerprint,
    fingerprint,
    hamming,
    is_duplicate,
)
from monitor.core.frequencies import background_for
from monitor.core.stories import THRESHOLDS, StreamFrequency, cosine, evidence, index_terms, weigh
from monitor.core.text import tokenize

WINDOW_S = 7 * 86400  # the default story window (MONITOR_STORY_WINDOW)


@dataclass(frozen=True)
class Article:
    title: str
    text: str
    published: datetime | None
    language: str | None = None


@dataclass(frozen=True)
class Pair:
    id: str
    kind: str
    duplicate: bool
    same_story: bool
    a: Article
    b: Article


def _article(data: dict[str, Any]) -> Article:
    published = data.get("published")
    return Article(
        title=data.get("title") or "",
        text=data.get("text") or "",
        published=datetime.fromisoformat(published) if published else None,
        language=data.get("language"),
    )


def load_pairs(path: Path) -> list[Pair]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            pairs.append(
                Pair(
                    id=data["id"],
                    kind=data["kind"],
                    duplicate=bool(data["duplicate"]),
                    same_story=bool(data["same_story"]),
                    a=_article(data["a"]),
                    b=_article(data["b"]),
                )
            )
    return pairs


@dataclass(frozen=True)
class _Features:
    fingerprint: Fingerprint
    vector: dict[str, float]
    bands: frozenset[str]


def _features(article: Article) -> _Features:
    text = strip_boilerplate(article.text)
    tokens = tokenize(text)
    background = background_for(article.language, tokens.words)
    # A pair has no stream around it: the language's frequencies weigh the terms alone.
    vector = weigh(evidence(article.title, text, text_tokens=tokens), StreamFrequency(), background)
    fp = fingerprint(tokens.words, with_simhash=True)
    return _Features(fp, vector, frozenset(fp.bands()))


@dataclass(frozen=True)
class Verdict:
    pair: Pair
    duplicate: bool
    duplicate_simhash: bool
    same_story: bool
    similarity: float


@dataclass(frozen=True)
class Measured:
    """A pair with both articles' features, computed once for every threshold tried."""

    pair: Pair
    a: _Features
    b: _Features

    @property
    def within_window(self) -> bool:
        first, second = self.pair.a.published, self.pair.b.published
        return first is None or second is None or abs((first - second).total_seconds()) <= WINDOW_S

    def judge(self, story_similarity: float, simhash_bits: int) -> Verdict:
        a, b = self.a, self.b
        similarity = cosine(a.vector, b.vector)
        found_story = bool(set(index_terms(a.vector)) & set(index_terms(b.vector)))
        story = self.within_window and found_story and similarity >= story_similarity
        found = bool(a.bands & b.bands) or story
        duplicate = found and is_duplicate(a.fingerprint, b.fingerprint)
        by_simhash = bool(a.fingerprint.size and b.fingerprint.size) and (
            hamming(a.fingerprint, b.fingerprint) <= simhash_bits
        )
        return Verdict(self.pair, duplicate, by_simhash, duplicate or story, similarity)


def measure(pairs: Iterable[Pair]) -> list[Measured]:
    return [Measured(pair, _features(pair.a), _features(pair.b)) for pair in pairs]


def _scores(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    return {
        "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def evaluate(
    measured: Sequence[Measured],
    *,
    story_similarity: float = THRESHOLDS.confident,
    simhash_bits: int = SIMHASH_DISTANCE,
) -> dict[str, Any]:
    """Scores for level 2 (MinHash, SimHash) and level 3, and the pairs each got wrong."""
    verdicts = [m.judge(story_similarity, simhash_bits) for m in measured]
    duplicates = [v.pair.duplicate for v in verdicts]
    stories = [v.pair.same_story for v in verdicts]
    return {
        "pairs": len(verdicts),
        "story_similarity": story_similarity,
        "simhash_bits": simhash_bits,
        "level2_minhash": _scores(duplicates, [v.duplicate for v in verdicts]),
        "level2_simhash": _scores(duplicates, [v.duplicate_simhash for v in verdicts]),
        "level3": _scores(stories, [v.same_story for v in verdicts]),
        "wrong": [
            {
                "id": v.pair.id,
                "kind": v.pair.kind,
                "level": 2 if v.duplicate != v.pair.duplicate else 3,
                "similarity": round(v.similarity, 3),
            }
            for v in verdicts
            if v.duplicate != v.pair.duplicate or v.same_story != v.pair.same_story
        ],
    }


def sweep(measured: Sequence[Measured]) -> list[str]:
    """Lines of precision/recall as the thresholds move, for docs/dedup.md."""
    lines = ["story similarity: level-3 precision / recall"]
    for step in range(10, 61, 5):
        scores = evaluate(measured, story_similarity=step / 100)["level3"]
        lines.append(f"  {step / 100:.2f}: {scores['precision']:.3f} / {scores['recall']:.3f}")
    lines.append("simhash bits: level-2 precision / recall")
    for bits in (3, 6, 9, 12, 15, 18, 21):
        scores = evaluate(measured, simhash_bits=bits)["level2_simhash"]
        lines.append(f"  {bits:>2}: {scores['precision']:.3f} / {scores['recall']:.3f}")
    return lines


def dedup_report(result: dict[str, Any], measured: Sequence[Measured]) -> str:
    """The scores of each level, the pairs it got wrong, and the threshold sweep."""
    lines = []
    for name in ("level2_minhash", "level2_simhash", "level3"):
        scores = result[name]
        lines.append(
            f"{name:15} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
            f"  (tp {scores['true_positives']}, fp {scores['false_positives']},"
            f" fn {scores['false_negatives']})"
        )
    for wrong in result["wrong"]:
        lines.append(f"  wrong at level {wrong['level']}: {wrong['id']} ({wrong['kind']})")
    lines.extend(sweep(measured))
    return "\n".join(lines)
