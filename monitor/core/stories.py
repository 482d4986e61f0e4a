"""Stories without I/O: which earlier item an item duplicates, and which story it joins.

Level 3 compares what articles are *about*, not their wording: each item becomes a vector of its
distinctive terms, weighted by how rare a word is in the language (``background``: a word's Zipf
frequency, passed in so the core stays pure) and boosted for names and numbers, which carry the
identity of an event. Items join the story whose combined vector is closest, when close enough;
duplicates (level 2) always join the story of the item they duplicate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.core.dedup import Fingerprint, is_duplicate, jaccard
from monitor.core.text import Tokens, tokenize

Background = Callable[[str], float]
"""A word's Zipf frequency in ordinary text (about 7 for "the", 0 for a word never seen)."""

TOP_TERMS = 40  # terms kept per item
CENTROID_TERMS = 80  # terms kept per story
INDEX_TERMS = 12  # an item's strongest terms, used to look up candidate stories
STORY_SIMILARITY = 0.40  # chosen on tests/data/dedup (docs/dedup.md)
COMMON_ZIPF = 5.5  # words at least this common never identify an event
NAME_BOOST = 3.0  # names (capitalized inside sentences) identify an event more than vocabulary
LEAD_WORDS = 120  # words of the text's beginning that count double: the lead says what happened


def term_vector(
    title: str,
    text: str,
    background: Background,
    *,
    top: int = TOP_TERMS,
    text_tokens: Tokens | None = None,
) -> dict[str, float]:
    """The distinctive terms of an article, L2-normalized weights, strongest first
    (``text_tokens``: the text already tokenized)."""
    tokens = text_tokens or tokenize(text)
    counts: Counter[str] = Counter(tokens.words)
    counts.update(tokens.words[:LEAD_WORDS])  # the lead says what happened: it counts double
    title_words = tokenize(title).words
    for word in title_words:
        counts[word] += 3
    names = {
        word
        for word, start in zip(tokens.words[1:], tokens.starts[1:], strict=True)
        if text[start].isupper()
    }
    weights: dict[str, float] = {}
    for word, count in counts.items():
        if len(word) < 2 and not word.isdigit():
            continue
        zipf = background(word)
        if zipf >= COMMON_ZIPF:
            continue
        rarity = max(0.5, 7.0 - zipf)
        boost = NAME_BOOST if word in names else 1.0
        if any(c.isdigit() for c in word):
            boost = 1.3 if len(word) >= 3 else 0.5
        weights[word] = (1.0 + math.log(count)) * rarity * boost
    strongest = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return _normalized(dict(strongest))


def _normalized(vector: Mapping[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in vector.values()))
    return {k: v / norm for k, v in vector.items()} if norm else {}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Cosine similarity of two term vectors (either may be unnormalized)."""
    if len(a) > len(b):
        a, b = b, a
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    if not dot:
        return 0.0
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb)


def merge(centroid: Mapping[str, float], vector: Mapping[str, float]) -> dict[str, float]:
    """A story's vector after one more item: the sum, cut to its strongest terms."""
    total = Counter(dict(centroid))
    total.update(vector)
    return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:CENTROID_TERMS])


def index_terms(vector: Mapping[str, float]) -> list[str]:
    """The terms under which an item's story is found by later items."""
    return list(vector)[:INDEX_TERMS]


@dataclass(frozen=True, slots=True)
class Known:
    """An earlier item that might be the same article: its id, story and fingerprint."""

    item: str
    story: str
    fingerprint: Fingerprint


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story as far as assignment needs it."""

    id: str
    centroid: Mapping[str, float]
    items: int = 1
    sources: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an item goes: the item it duplicates (if any) and its story (None: a new one)."""

    duplicate_of: str | None
    story: str | None
    similarity: float = 0.0


def decide(
    fingerprint: Fingerprint,
    vector: Mapping[str, float],
    known: Iterable[Known],
    stories: Sequence[StoryView],
    *,
    threshold: float = STORY_SIMILARITY,
) -> Decision:
    """Level 2 first (the most similar duplicate wins), then level 3 (the closest story)."""
    duplicates = [k for k in known if is_duplicate(fingerprint, k.fingerprint)]
    if duplicates:
        best = max(duplicates, key=lambda k: (jaccard(fingerprint, k.fingerprint), k.item))
        return Decision(best.item, best.story, jaccard(fingerprint, best.fingerprint))
    scored = [(cosine(vector, story.centroid), story.id) for story in stories]
    if scored:
        similarity, story = max(scored)
        if similarity >= threshold:
            return Decision(None, story, similarity)
    return Decision(None, None)
