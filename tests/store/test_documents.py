"""A placed item's document: its term vector kept compact, read back exactly, the JSON of
documents written before still read."""

from __future__ import annotations

import json
import random

from monitor.store.decisions import rounded
from monitor.store.documents import candidate_of, decode_vector, encode_vector


def test_a_vector_comes_back_exactly_as_rounded_and_smaller_than_json() -> None:
    draw = random.Random(7)
    for _ in range(2000):
        vector = {f"w{i}": draw.random() ** draw.choice([1, 3, 8]) for i in range(40)}
        stored = encode_vector(vector)
        assert decode_vector(stored) == rounded(vector)
        assert len(stored) < 0.7 * len(json.dumps(rounded(vector)))
    assert decode_vector(encode_vector({"storm": 1.0, "x": float("nan")})) == {"storm": 1.0}


def test_an_empty_vector_and_one_written_before_as_json_are_read() -> None:
    assert decode_vector(encode_vector({})) == {}
    before = json.dumps({"lofton": 0.3022, "englewood": 0.3016})
    assert decode_vector(before) == {"lofton": 0.3022, "englewood": 0.3016}
    candidate = candidate_of("a:1", None, "s1", before, "Title", "a", "100", None)
    assert candidate is not None and candidate.member is not None
    assert candidate.member.vector == {"lofton": 0.3022, "englewood": 0.3016}
