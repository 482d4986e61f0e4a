"""A batch's placement decisions, item after item, without I/O: what placement prepared of each
new item, the earlier items it was compared with, and where each item went (``store.stories``
reads the inputs and writes the outcome).

Each item is weighed again here, just before it is decided, with the stream's story frequencies
as they stand after the items before it in the batch (``core.stories.StoryTally``): a batch of
thirty reports of one event counts that event once, as it would if they came one at a time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.core.dedup import Fingerprint
from monitor.core.stories import (
    Decision,
    Embedding,
    Known,
    Member,
    Semantic,
    StoryTally,
    Thresholds,
    Weighing,
    decide,
    for_length,
    index_terms,
    new_to_story,
)
from monitor.models import Item
from monitor.store.keys import digest


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an item went: its story, the item it duplicates, how many sources carry the story;
    for an item that joined a story, the earlier item it matched, how closely, and whether the
    tie is confident enough for a rule's match to be a follow-up."""

    item: str
    story: str
    duplicate_of: str | None = None
    new_story: bool = False
    sources: int = 1
    similarity: float = 0.0
    matched: str | None = None
    confident: bool = True
    matched_title: str = ""


@dataclass
class Prepared:
    """A new item as placement compares it. ``vector`` and ``terms`` are first weighed with the
    stream as it was before the batch (to find candidates), then again when it is decided."""

    item: Item
    when: float
    language: str
    fingerprint: Fingerprint
    weighing: Weighing  # its evidence and the stream's counts before the batch
    counted: set[str]  # its words whose stream frequency is counted
    vector: dict[str, float]
    bands: list[str]
    terms: list[str]  # indexed under
    query: list[str]  # looked up by
    words: int
    embedding: Embedding | None = None
    semantic: Semantic | None = None
    seen_in_story: frozenset[str] = frozenset()  # members of its story it was compared with
    common: frozenset[str] = frozenset()  # its terms too common in the stream to index it by
    # Redis names built with the rest, off the event loop: each band's bucket key and member
    # prefix (``Keys.band``), and the keys of the query terms.
    band_keys: list[tuple[str, str]] = field(default_factory=list)
    query_keys: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    """An earlier item as placement compares it."""

    known: Known | None
    member: Member | None
    title: str
    source: str
    when: float


@dataclass
class _Batch:
    """What the batch itself has decided so far, consulted before what Redis knew."""

    candidates: dict[str, Candidate] = field(default_factory=dict)
    by_band: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_term: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sources: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    tallies: dict[str, StoryTally] = field(default_factory=lambda: defaultdict(StoryTally))


def story_id(item: str) -> str:
    """A story is named after its first item: stable, and the same on every worker."""
    return "s" + digest(item)[:16]


def rounded(vector: Mapping[str, float]) -> dict[str, float]:
    """A vector as it is stored: four decimals, nothing that is not a finite number."""
    return {k: round(v, 4) for k, v in vector.items() if math.isfinite(v)}


@dataclass(frozen=True, slots=True)
class Context:
    """What every decision of a batch uses: the story window and the thresholds."""

    window_s: float
    thresholds: Thresholds


def decide_batch(
    prepared: Sequence[Prepared],
    candidates: Mapping[str, Candidate],
    band_hits: Sequence[set[str]],
    term_hits: Sequence[set[str]],
    context: Context,
    previous: Sequence[Placement] | None = None,
    recheck: Collection[int] = (),
) -> tuple[list[Placement], dict[str, Candidate], dict[str, StoryTally]]:
    """Each item in turn, seeing what Redis knew and what the batch decided: its vector weighed
    again with the batch's story frequencies so far, then ``core.stories.decide``. Sets each
    item's final ``vector`` and ``terms``. Returns the placements, the batch's items
    as later batches compare them, and what the batch adds to each language's frequencies.

    ``previous``: this batch's placements decided before some of its items (``recheck``, by
    index) found more candidates (another worker wrote them meanwhile). Until one of those
    items goes elsewhere than before, every item keeps its earlier decision and vector, and
    only the rechecked ones are decided again; from there on, every item is."""
    batch = _Batch()
    placements: list[Placement] = []
    diverged = previous is None
    for index, (p, bands, terms) in enumerate(zip(prepared, band_hits, term_hits, strict=True)):
        tally = batch.tallies[p.language]
        if diverged:
            p.vector = p.weighing.vector(tally)
            p.terms = index_terms(p.vector, p.common)
        near = set(bands) | {i for b in p.bands for i in batch.by_band.get(b, ())}
        related = set(terms) | {i for t in p.query for i in batch.by_term.get(t, ())}
        found = {
            i: c
            for i in sorted((near | related) - {p.item.id})
            if (c := batch.candidates.get(i) or candidates.get(i)) is not None
        }
        members = [
            c.member
            for c in found.values()
            if c.member and abs(c.when - p.when) <= context.window_s
        ]
        before = None if previous is None else previous[index]
        if diverged or index in recheck or before is None:
            decision = decide(
                p.fingerprint,
                p.vector,
                [c.known for i, c in found.items() if c.known and i in near],
                members,
                thresholds=p.semantic.thresholds
                if p.semantic
                else for_length(p.words, context.thresholds),
                embedding=p.embedding,
                weight=p.semantic.weight if p.semantic else 0.0,
            )
        else:
            decision = Decision(
                before.duplicate_of,
                None if before.new_story else before.story,
                before.similarity,
                before.matched,
                before.confident,
            )
        story = decision.story or story_id(p.item.id)
        in_story = [m for m in members if m.story == story]
        seen = frozenset(m.item for m in in_story)
        if before is not None and not diverged:
            # What the items after it see (the batch's counts, its story) is as before.
            diverged = (story, decision.duplicate_of, seen) != (
                before.story,
                before.duplicate_of,
                p.seen_in_story,
            )
        p.seen_in_story = seen
        if decision.story is None:
            tally.add(p.counted, story=True)
        else:
            tally.add(new_to_story(p.counted, in_story), story=False)
        matched = found[decision.matched] if decision.matched else None
        batch.sources[story].add(p.item.source)
        if matched is not None:
            batch.sources[story].add(matched.source)
        batch.candidates[p.item.id] = Candidate(
            Known(p.item.id, story, p.fingerprint),
            Member(p.item.id, story, rounded(p.vector), p.fingerprint, p.embedding)
            if p.vector
            else None,
            p.item.title,
            p.item.source,
            p.when,
        )
        for band in p.bands:
            batch.by_band[band].add(p.item.id)
        if decision.duplicate_of is None:
            for term in p.terms:
                batch.by_term[term].add(p.item.id)
        placements.append(
            Placement(
                item=p.item.id,
                story=story,
                duplicate_of=decision.duplicate_of,
                new_story=decision.story is None,
                sources=len(batch.sources[story]),
                similarity=round(decision.similarity, 3),
                matched=decision.matched,
                confident=decision.confident,
                matched_title=matched.title if matched else "",
            )
        )
    return placements, batch.candidates, dict(batch.tallies)
