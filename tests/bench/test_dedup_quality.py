"""Duplicate and story detection measured on the labelled pairs (tests/data/dedup)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.bench.dedup import Measured, evaluate, load_pairs, measure

PAIRS = Path(__file__).resolve().parents[1] / "data" / "dedup" / "pairs.jsonl"


@pytest.fixture(scope="module")
def measured() -> list[Measured]:
    return measure(load_pairs(PAIRS))


def test_the_labelled_set_is_big_and_varied_enough(measured: list[Measured]) -> None:
    kinds = {m.pair.kind for m in measured}
    assert len(measured) >= 60
    assert {"syndicated", "markdown-vs-plain", "updated", "teaser-vs-full"} <= kinds
    assert {"same-event-other-outlet", "same-template-different-facts"} <= kinds
    assert {"shared-name-different-event"} <= kinds


def test_level_2_duplicates(measured: list[Measured]) -> None:
    scores = evaluate(measured)["level2_minhash"]
    assert scores["precision"] >= 0.98, scores
    assert scores["recall"] >= 0.95, scores


def test_level_3_stories(measured: list[Measured]) -> None:
    """Judged at the confident threshold (the tie that makes a follow-up): a pair has no stream
    around it, and the joining threshold is chosen on real news (monitor eval stories)."""
    scores = evaluate(measured)["level3"]
    assert scores["precision"] >= 0.9, scores
    assert scores["recall"] >= 0.8, scores


def test_minhash_beats_simhash_at_equal_precision(measured: list[Measured]) -> None:
    """Why MinHash decides level 2: SimHash finds fewer duplicates for the same precision."""
    result = evaluate(measured)
    minhash, simhash = result["level2_minhash"], result["level2_simhash"]
    assert simhash["precision"] <= minhash["precision"]
    assert simhash["recall"] < minhash["recall"]


def test_other_outlets_are_stories_not_duplicates(measured: list[Measured]) -> None:
    for m in measured:
        if m.pair.kind == "same-event-other-outlet":
            verdict = m.judge(0.40, 12)
            assert not verdict.duplicate, m.pair.id
