"""Canonical URLs, boilerplate and fingerprints: the pure part of duplicate detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.core.analysis import keyed_lines, strip_boilerplate
from monitor.core.dedup import (
    BANDS,
    Fingerprint,
    canonical_url,
    containment,
    fingerprint,
    is_duplicate,
    jaccard,
)

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.ORG/a/b", "https://example.org/a/b"),
        ("HTTP://example.org:80/x", "http://example.org/x"),
        ("https://example.org:443/x", "https://example.org/x"),
        ("https://example.org:8443/x", "https://example.org:8443/x"),
        ("https://example.org/x#comments", "https://example.org/x"),
        ("https://example.org/x?utm_source=rss&utm_medium=feed", "https://example.org/x"),
        ("https://example.org/x?id=7&fbclid=abc&gclid=1&mc_cid=2", "https://example.org/x?id=7"),
        ("https://example.org/x?b=2&a=1", "https://example.org/x?a=1&b=2"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org//a//b", "https://example.org/a/b"),
        ("https://example.org/x?q=", "https://example.org/x?q="),
        ("  https://example.org/x  ", "https://example.org/x"),
        ("https://example.org./x", "https://example.org/x"),
        ("mailto:desk@example.org", None),
        ("urn:uuid:1234", None),
        ("not a url", None),
        ("https://example.org:notaport/x", None),
    ],
)
def test_canonical_url(url: str, expected: str | None) -> None:
    assert canonical_url(url) == expected


def test_copies_with_different_tracking_parameters_share_a_canonical_url() -> None:
    a = canonical_url("https://news.example/story?id=5&utm_source=twitter")
    b = canonical_url("https://NEWS.example:443/story?fbclid=xyz&id=5#top")
    assert a == b


@pytest.mark.parametrize(
    "line",
    [
        "Read more: https://example.org/more",
        "**Related article:** [Moscow Risks Losing a Key Ally](#)",
        "Related stories: what we know",
        "https://example.org/a-link-on-its-own",
        "[Just a link](https://example.org)",
        "Subscribe to our newsletter",
        "© 2026 Example Media. All rights reserved.",
        "Share this article",
        "Original url:",
    ],
)
def test_boilerplate_lines_are_removed(line: str) -> None:
    text = f"The council met on Monday.\n{line}\nIt voted to approve the plan."
    assert strip_boilerplate(text) == "The council met on Monday.\nIt voted to approve the plan."


def test_an_appeal_at_the_end_ends_the_article() -> None:
    body = "\n".join(f"Paragraph {n} of the report on the vote." for n in range(8))
    appeal = "Dear readers,\nWe need your support to continue.\nDonate today."
    assert strip_boilerplate(f"{body}\n{appeal}") == body


def test_an_appeal_word_early_in_the_article_is_kept() -> None:
    text = "The charity said donations rose.\n" + "\n".join(f"Line {n}." for n in range(8))
    assert strip_boilerplate(text) == text


def test_lines_known_to_repeat_in_a_source_are_removed() -> None:
    footer = "The Example Daily is published by Example Media Group in Springfield."
    text = f"The mayor resigned on Tuesday.\n{footer}"
    assert strip_boilerplate(text, [footer]) == "The mayor resigned on Tuesday."
    assert [line for line, _ in keyed_lines(text)] == ["The mayor resigned on Tuesday.", footer]


def test_fingerprints_are_versioned_and_round_trip() -> None:
    fp = fingerprint((SEEDS / "000_947a12ba61f05170.txt").read_text())
    encoded = fp.encode()
    assert encoded.startswith("v1:")
    assert Fingerprint.decode(encoded) == fp
    assert Fingerprint.decode("v0:" + encoded[3:]) is None
    assert len(fp.bands()) == BANDS and len(set(fp.bands())) == BANDS


def test_the_same_article_in_two_formats_is_a_duplicate() -> None:
    plain = strip_boilerplate((SEEDS / "000_947a12ba61f05170.txt").read_text())
    markdown = strip_boilerplate((SEEDS / "001_15baf2397582328a.txt").read_text())
    a, b = fingerprint(plain), fingerprint(markdown)
    assert jaccard(a, b) > 0.9
    assert is_duplicate(a, b)


def test_other_outlets_are_not_duplicates() -> None:
    texts = [strip_boilerplate(p.read_text()) for p in sorted(SEEDS.iterdir())]
    prints = [fingerprint(t) for t in texts]
    for other in prints[2:]:
        assert not is_duplicate(prints[0], other)
        assert jaccard(prints[0], other) < 0.1


def test_a_teaser_is_contained_in_its_full_text() -> None:
    full = strip_boilerplate((SEEDS / "000_947a12ba61f05170.txt").read_text())
    teaser = "\n".join(full.splitlines()[:4]) + " …"
    a, b = fingerprint(teaser), fingerprint(full)
    assert jaccard(a, b) < 0.5
    assert containment(a, b) > 0.85
    assert is_duplicate(a, b)


def test_empty_text_is_never_a_duplicate() -> None:
    empty = fingerprint("")
    assert not is_duplicate(empty, empty)


def test_shared_permutations_give_the_signature_of_a_fresh_minhash() -> None:
    """Fingerprints already stored must still compare: drawing the permutations once changes
    no signature."""
    import xxhash
    from datasketch import LeanMinHash, MinHash

    from monitor.core.dedup import PERMUTATIONS, shingles

    text = "The council met on Monday and voted to approve the plan for the new bridge."
    fresh = MinHash(num_perm=PERMUTATIONS, hashfunc=xxhash.xxh32_intdigest, seed=1)
    fresh.update_batch(shingles(text))
    assert fingerprint(text).minhash == tuple(LeanMinHash(fresh).hashvalues.tolist())
