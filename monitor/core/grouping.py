"""How well a grouping of articles into events agrees with a labelled one, and the naive
grouping it must beat. Pure: ``monitor eval stories`` feeds it.

Scores are **pairwise** (precision and recall over the pairs of articles put in one group:
what a desk feels, since every wrong pair is an unrelated article shown as the same story) and
**B-cubed** (per article, the share of its group that is right; flattering when most articles
stand alone). The **baseline** is an online single pass over TF-IDF vectors of title and text,
with document frequencies from the set itself: each article joins the group of its most similar
earlier article when the cosine reaches a threshold, swept to show the best one.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from monitor.core.text import tokenize

BASELINE_THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 19))


@dataclass(frozen=True, slots=True)
class Article:
    """One labelled article: the event it reports is ``cluster``."""

    id: str
    title: str
    text: str
    cluster: str


@dataclass(frozen=True, slots=True)
class Scores:
    """Pairwise and B-cubed precision, recall and F1 of one grouping."""

    precision: float
    recall: float
    f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    predicted_pairs: int
    true_pairs: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
            "bcubed_precision": round(self.bcubed_precision, 3),
            "bcubed_recall": round(self.bcubed_recall, 3),
            "bcubed_f1": round(self.bcubed_f1, 3),
            "predicted_pairs": self.predicted_pairs,
            "true_pairs": self.true_pairs,
        }


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _pairs(groups: Mapping[str, Sequence[str]]) -> set[tuple[str, str]]:
    return {pair for members in groups.values() for pair in combinations(sorted(members), 2)}


def score(chunks: Sequence[Sequence[Article]], predicted: Mapping[str, str]) -> Scores:
    """Score ``predicted`` (article id → group) against the labels. Articles are grouped chunk
    by chunk, so only pairs inside one chunk count, for the labels as for the prediction."""
    true_pairs: set[tuple[str, str]] = set()
    found_pairs: set[tuple[str, str]] = set()
    b_precision = b_recall = 0.0
    count = 0
    for chunk in chunks:
        truth: dict[str, list[str]] = defaultdict(list)
        guess: dict[str, list[str]] = defaultdict(list)
        for article in chunk:
            truth[article.cluster].append(article.id)
            guess[predicted[article.id]].append(article.id)
        true_pairs |= _pairs(truth)
        found_pairs |= _pairs(guess)
        true_of = {i: set(m) for m in truth.values() for i in m}
        guess_of = {i: set(m) for m in guess.values() for i in m}
        for article in chunk:
            both = len(true_of[article.id] & guess_of[article.id])
            b_precision += both / len(guess_of[article.id])
            b_recall += both / len(true_of[article.id])
            count += 1
    hits = len(true_pairs & found_pairs)
    precision = hits / len(found_pairs) if found_pairs else 1.0
    recall = hits / len(true_pairs) if true_pairs else 1.0
    bp, br = (b_precision / count, b_recall / count) if count else (1.0, 1.0)
    return Scores(
        precision,
        recall,
        _f1(precision, recall),
        bp,
        br,
        _f1(bp, br),
        len(found_pairs),
        len(true_pairs),
    )


def baseline(
    chunks: Sequence[Sequence[Article]], thresholds: Sequence[float] = BASELINE_THRESHOLDS
) -> dict[float, dict[str, str]]:
    """The naive grouping at each threshold: article id → group (its first article's id)."""
    articles = [a for chunk in chunks for a in chunk]
    words = {a.id: tokenize(f"{a.title}\n{a.text}").words for a in articles}
    frequency = Counter(w for a in articles for w in set(words[a.id]))
    total = len(articles)
    vectors: dict[str, dict[str, float]] = {}
    for a in articles:
        counts = Counter(words[a.id])
        raw = {w: (1 + math.log(n)) * math.log(total / frequency[w]) for w, n in counts.items()}
        norm = math.sqrt(sum(x * x for x in raw.values())) or 1.0
        vectors[a.id] = {w: x / norm for w, x in raw.items() if x}
    nearest: dict[str, tuple[str | None, float]] = {}
    for chunk in chunks:
        postings: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for a in chunk:
            dots: defaultdict[str, float] = defaultdict(float)
            for w, x in vectors[a.id].items():
                for other, y in postings[w]:
                    dots[other] += x * y
            nearest[a.id] = max(dots.items(), key=lambda kv: kv[1]) if dots else (None, 0.0)
            for w, x in vectors[a.id].items():
                postings[w].append((a.id, x))
    out: dict[float, dict[str, str]] = {}
    for threshold in thresholds:
        group: dict[str, str] = {}
        for chunk in chunks:
            for a in chunk:
                neighbour, similarity = nearest[a.id]
                joined = neighbour if similarity >= threshold else None
                group[a.id] = group[joined] if joined is not None else a.id
        out[threshold] = group
    return out


def best_baseline(
    chunks: Sequence[Sequence[Article]],
) -> tuple[float, Scores, list[tuple[float, Scores]]]:
    """The baseline's best threshold by pairwise F1, its scores, and the whole sweep."""
    sweep = [(t, score(chunks, grouping)) for t, grouping in baseline(chunks).items()]
    threshold, best = max(sweep, key=lambda pair: (pair[1].f1, -pair[0]))
    return threshold, best, sweep
