"""Scores of a grouping against labels, and the naive baseline (no I/O)."""

from __future__ import annotations

import pytest

from monitor.core.grouping import Article, baseline, best_baseline, score


def articles(*labels: str) -> list[Article]:
    return [Article(f"a{i}", f"title {i}", f"text {i}", label) for i, label in enumerate(labels)]


def test_a_perfect_grouping_scores_one() -> None:
    chunk = articles("x", "x", "y")
    result = score([chunk], {"a0": "g", "a1": "g", "a2": "h"})
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_pairwise_counts_pairs() -> None:
    # Truth: {a0, a1, a2} one event, a3 alone. Predicted: {a0, a1}, {a2, a3}.
    chunk = articles("x", "x", "x", "y")
    result = score([chunk], {"a0": "g", "a1": "g", "a2": "h", "a3": "h"})
    assert result.true_pairs == 3 and result.predicted_pairs == 2
    assert result.precision == pytest.approx(1 / 2)
    assert result.recall == pytest.approx(1 / 3)


def test_only_pairs_inside_one_chunk_count() -> None:
    first, second = articles("x", "y"), [Article("b0", "t", "t", "x")]
    result = score([first, second], {"a0": "g", "a1": "h", "b0": "k"})
    assert result.true_pairs == 0 and result.precision == 1.0


def test_the_baseline_joins_near_copies_and_not_unrelated_texts() -> None:
    chunk = [
        Article("1", "Lima earthquake", "A quake shook Lima in Peru today", "q"),
        Article("2", "Lima earthquake", "A quake shook Lima in Peru today, officials said", "q"),
        Article("3", "Senate budget", "The Senate passed the budget bill after a long debate", "b"),
    ]
    grouping = baseline([chunk], [0.5])[0.5]
    assert grouping["2"] == grouping["1"] != grouping["3"]
    threshold, best, sweep = best_baseline([chunk])
    assert best.f1 == 1.0 and len(sweep) > 5 and 0 < threshold < 1
