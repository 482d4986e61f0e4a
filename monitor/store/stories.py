"""Duplicates and stories on Redis: levels 2 and 3 of docs/dedup.md, a batch at a time.

For a batch of new items, a constant number of pipelined round trips, whatever its size:

1. count each line per source and week, so lines that keep recurring are stripped as boilerplate;
2. look up candidates: items sharing an LSH band of the MinHash signature, and recent stories
   indexed under the item's distinctive terms;
3. fetch those candidates' fingerprints and story centroids, and the latest items of the
   candidate stories (a teaser shares few shingles with its full text, but its story);
4. write every decision: the item's fingerprint, its bands, its story's centroid and indexes.

Decisions are made by the pure ``core.stories.decide``, item after item, each item seeing the
ones before it in the same batch. Steps 2 to 4 run under a lock in Redis, so process workers
place their batches one after another: two items of one new event, taken by two workers at the
same moment, still make one story, and a story's centroid is never overwritten by a stale one.
Every key has a TTL (``dedup_ttl``; the term index the story window), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypedDict

from monitor.core.dedup import Fingerprint, fingerprint, keyed_lines, strip_boilerplate
from monitor.core.stories import (
    Background,
    Known,
    StoryView,
    decide,
    index_terms,
    merge,
    term_vector,
)
from monitor.core.text import tokenize
from monitor.errors import StoreError
from monitor.models import Item
from monitor.store import Store
from monitor.store.keys import digest

logger = logging.getLogger(__name__)

WEEK_S = 7 * 86400
REPEATED = 3  # a line seen in this many items of one source (within two weeks) is boilerplate
STORY_CANDIDATES = 8
STORY_ITEMS = 20  # latest items of each candidate story checked for duplicates
SHORT_TEXT = 40  # words: below this, the fingerprint covers the title as well
PLACEMENT_LOCK_MS = 30_000  # far longer than a batch's placement; frees itself if a worker dies
PLACEMENT_WAIT_S = 60.0


class StoryMember(TypedDict):
    """One item of a story, as ``monitor stories`` lists it."""

    id: str
    title: str
    source: str
    url: str | None
    duplicate_of: str | None


class StorySummary(TypedDict):
    """One story, as ``monitor stories`` (and ``--json``) shows it."""

    id: str
    title: str
    url: str | None
    items: int
    duplicates: int
    sources: list[str]
    first_seen: float
    last_seen: float
    members: list[StoryMember]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an item went: its story, the item it duplicates, how many sources carry the story."""

    item: str
    story: str
    duplicate_of: str | None = None
    new_story: bool = False
    sources: int = 1
    similarity: float = 0.0


@dataclass
class _Prepared:
    item: Item
    fingerprint: Fingerprint
    vector: dict[str, float]
    bands: list[str]
    terms: list[str]


@dataclass
class _Batch:
    """What the batch itself has decided so far, consulted before what Redis knew."""

    known: dict[str, Known] = field(default_factory=dict)
    by_band: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_term: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    views: dict[str, StoryView] = field(default_factory=dict)
    story_items: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def story_id(item: Item) -> str:
    """A story is named after its first item: stable, and the same on every worker."""
    return "s" + digest(item.id)[:16]


class StoryKeeper:
    """Places new items into stories, and answers what the recent stories are."""

    def __init__(
        self,
        store: Store,
        background: Callable[[str | None, Sequence[str]], Background],
        *,
        window_s: int = 48 * 3600,
        ttl_s: int = 30 * 86400,
    ) -> None:
        """``background(language, words)`` gives the word-frequency function of an item's
        language (guessed from its words when the item does not say)."""
        self.store = store
        self.background = background
        self.window_s = window_s
        self.ttl_s = ttl_s

    async def place(self, items: Sequence[Item], now: float) -> list[Placement]:
        """Place each item; an item placed before (its entry is being redelivered after a
        crash) gets its earlier placement back, unchanged."""
        if not items:
            return []
        earlier = await self._placed_before(items)
        fresh = [item for item in items if item.id not in earlier]
        placed = {p.item: p for p in await self._place(fresh, now)} if fresh else {}
        return [earlier.get(item.id) or placed[item.id] for item in items]

    async def _placed_before(self, items: Sequence[Item]) -> dict[str, Placement]:
        keys = self.store.keys
        async with self.store.pipeline() as pipe:
            for item in items:
                pipe.hmget(keys.doc(item.id), ["story", "duplicate_of"])
            stored = await pipe.execute()
        found = {
            item.id: (story, duplicate_of)
            for item, (story, duplicate_of) in zip(items, stored, strict=True)
            if story
        }
        if not found:
            return {}
        async with self.store.pipeline() as pipe:
            for story, _ in found.values():
                pipe.scard(keys.story_sources(story))
            counts = await pipe.execute()
        return {
            item: Placement(item, story, duplicate_of or None, False, max(int(count), 1))
            for (item, (story, duplicate_of)), count in zip(found.items(), counts, strict=True)
        }

    async def _place(self, items: Sequence[Item], now: float) -> list[Placement]:
        cleaned = await self._without_boilerplate(items, now)
        prepared = []
        for item, text in zip(items, cleaned, strict=True):
            tokens = tokenize(text)
            # A short body (a teaser, "Comments") says little: the title counts too.
            words = (
                tokens.words
                if len(tokens.words) >= SHORT_TEXT
                else (tokenize(item.title).words + tokens.words)
            )
            fp = fingerprint(words)
            vector = term_vector(
                item.title, text, self.background(item.language, tokens.words), text_tokens=tokens
            )
            prepared.append(_Prepared(item, fp, vector, fp.bands(), index_terms(vector)))
        async with self._exclusive():  # read, decide and write as one step across workers
            band_hits, term_hits = await self._candidates(prepared, now)
            known, views, latest = await self._details(prepared, band_hits, term_hits)
            placements, grown = self._decide(prepared, band_hits, term_hits, known, views, latest)
            await self._write(prepared, placements, grown, now)
        return placements

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold the placement lock (Redis, with a TTL should this worker die), waiting for
        another worker's batch to be written first. Only the Redis reads, the pure decision
        and the write are inside; fingerprints and term vectors are computed before."""
        owner = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PLACEMENT_WAIT_S
        pause = 0.002
        while not await self.store.acquire_placement(owner, PLACEMENT_LOCK_MS):
            if loop.time() > deadline:
                raise StoreError(
                    f"story placement: another worker held the lock for over {PLACEMENT_WAIT_S:g} s"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            await self.store.release_placement(owner)

    async def _without_boilerplate(self, items: Sequence[Item], now: float) -> list[str]:
        """Round trip 1: count lines per source; strip the recurring ones and the usual suspects."""
        week = int(now // WEEK_S)
        keys = self.store.keys
        per_item = [keyed_lines(item.text) for item in items]
        async with self.store.pipeline() as pipe:
            for item, lines in zip(items, per_item, strict=True):
                current, previous = keys.lines(item.source, week), keys.lines(item.source, week - 1)
                for _, key in lines:
                    pipe.hincrby(current, key, 1)
                if lines:
                    pipe.expire(current, 2 * WEEK_S + 86400)
                    pipe.hmget(previous, [key for _, key in lines])
            results = await pipe.execute()
        cleaned: list[str] = []
        position = 0
        for item, lines in zip(items, per_item, strict=True):
            if not lines:
                cleaned.append(strip_boilerplate(item.text))
                continue
            now_counts = results[position : position + len(lines)]
            before = results[position + len(lines) + 1]
            position += len(lines) + 2
            repeated = [
                line
                for (line, _), seen_now, seen_before in zip(lines, now_counts, before, strict=True)
                if int(seen_now) + int(seen_before or 0) >= REPEATED
            ]
            cleaned.append(strip_boilerplate(item.text, repeated))
        return cleaned

    async def _candidates(
        self, prepared: Sequence[_Prepared], now: float
    ) -> tuple[list[set[str]], list[Counter[str]]]:
        """Round trip 2: items sharing a band, stories sharing a term (recent ones only)."""
        keys = self.store.keys
        async with self.store.pipeline() as pipe:
            for p in prepared:
                for band in p.bands:
                    pipe.smembers(keys.band(band))
                for term in p.terms:
                    pipe.zrangebyscore(keys.story_term(term), now - self.window_s, "+inf")
            results = await pipe.execute()
        band_hits: list[set[str]] = []
        term_hits: list[Counter[str]] = []
        position = 0
        for p in prepared:
            members = results[position : position + len(p.bands)]
            position += len(p.bands)
            band_hits.append(set().union(*members) if members else set())
            stories = results[position : position + len(p.terms)]
            position += len(p.terms)
            term_hits.append(Counter(s for found in stories for s in found))
        return band_hits, term_hits

    async def _details(
        self,
        prepared: Sequence[_Prepared],
        band_hits: Sequence[set[str]],
        term_hits: Sequence[Counter[str]],
    ) -> tuple[dict[str, Known], dict[str, StoryView], dict[str, list[str]]]:
        """Round trips 3 and 4: fingerprints of candidate items, candidate stories, and the
        fingerprints of those stories' latest items."""
        keys = self.store.keys
        items = sorted(set().union(*band_hits))
        stories = sorted({s for hits in term_hits for s, _ in hits.most_common(STORY_CANDIDATES)})
        async with self.store.pipeline() as pipe:
            for item in items:
                pipe.hmget(keys.doc(item), ["fingerprint", "story"])
            for story in stories:
                pipe.hmget(keys.story(story), ["centroid", "items"])
                pipe.smembers(keys.story_sources(story))
                pipe.zrevrange(keys.story_items(story), 0, STORY_ITEMS - 1)
            results = await pipe.execute()
        known = {
            item: k
            for item, (fp, story) in zip(items, results[: len(items)], strict=True)
            if (k := _known(item, fp, story)) is not None
        }
        views: dict[str, StoryView] = {}
        latest: dict[str, list[str]] = {}
        rest = results[len(items) :]
        for index, story in enumerate(stories):
            (centroid, count), sources, members = rest[3 * index : 3 * index + 3]
            if centroid:
                views[story] = StoryView(
                    story, json.loads(centroid), int(count or 1), frozenset(sources)
                )
                latest[story] = list(members)
        missing = sorted({m for members in latest.values() for m in members} - set(known))
        if missing:
            async with self.store.pipeline() as pipe:
                for item in missing:
                    pipe.hmget(keys.doc(item), ["fingerprint", "story"])
                for item, (fp, story) in zip(missing, await pipe.execute(), strict=True):
                    if (k := _known(item, fp, story)) is not None:
                        known[item] = k
        return known, views, latest

    def _decide(
        self,
        prepared: Sequence[_Prepared],
        band_hits: Sequence[set[str]],
        term_hits: Sequence[Counter[str]],
        known: dict[str, Known],
        views: dict[str, StoryView],
        latest: dict[str, list[str]],
    ) -> tuple[list[Placement], dict[str, StoryView]]:
        """Pure: each item in turn, seeing what Redis knew and what the batch decided."""
        batch = _Batch()
        placements: list[Placement] = []
        for p, bands, terms in zip(prepared, band_hits, term_hits, strict=True):
            local_terms = Counter(s for t in p.terms for s in batch.by_term.get(t, ()))
            ranked = (terms + local_terms).most_common(STORY_CANDIDATES)
            candidate_stories = [
                batch.views.get(s) or views[s] for s, _ in ranked if s in batch.views or s in views
            ]
            candidate_items = set(bands) | {i for b in p.bands for i in batch.by_band.get(b, ())}
            for view in candidate_stories:
                candidate_items.update(latest.get(view.id, ()))
                candidate_items.update(batch.story_items.get(view.id, ()))
            candidates = [
                batch.known.get(i) or known[i]
                for i in sorted(candidate_items - {p.item.id})
                if i in batch.known or i in known
            ]
            decision = decide(p.fingerprint, p.vector, candidates, candidate_stories)
            story = decision.story or story_id(p.item)
            current = batch.views.get(story) or views.get(story)
            sources = (current.sources if current else frozenset()) | {p.item.source}
            if decision.duplicate_of is None:
                centroid = merge(current.centroid if current else {}, p.vector)
                for term in p.terms:
                    batch.by_term[term].add(story)
            else:
                centroid = dict(current.centroid) if current else dict(p.vector)
            batch.views[story] = StoryView(
                story, centroid, (current.items if current else 0) + 1, sources
            )
            batch.known[p.item.id] = Known(p.item.id, story, p.fingerprint)
            batch.story_items[story].append(p.item.id)
            for band in p.bands:
                batch.by_band[band].add(p.item.id)
            placements.append(
                Placement(
                    item=p.item.id,
                    story=story,
                    duplicate_of=decision.duplicate_of,
                    new_story=decision.story is None,
                    sources=len(sources),
                    similarity=round(decision.similarity, 3),
                )
            )
        return placements, batch.views

    async def _write(
        self,
        prepared: Sequence[_Prepared],
        placements: Sequence[Placement],
        views: dict[str, StoryView],
        now: float,
    ) -> None:
        """Round trip 5: remember every item and what its story became."""
        keys, ttl = self.store.keys, self.ttl_s
        async with self.store.pipeline() as pipe:
            for p, placed in zip(prepared, placements, strict=True):
                item = p.item
                doc = keys.doc(item.id)
                pipe.hset(
                    doc,
                    mapping={
                        "fingerprint": p.fingerprint.encode(),
                        "story": placed.story,
                        "duplicate_of": placed.duplicate_of or "",
                        "source": item.source,
                        "title": item.title,
                        "url": item.url or "",
                        "seen": now,
                    },
                )
                pipe.expire(doc, ttl)
                for band in p.bands:
                    pipe.sadd(keys.band(band), item.id)
                    pipe.expire(keys.band(band), ttl)
                story = keys.story(placed.story)
                if placed.new_story:
                    pipe.hsetnx(story, "title", item.title)
                    pipe.hsetnx(story, "url", item.url or "")
                    pipe.hsetnx(story, "first_seen", now)
                view = views[placed.story]
                if placed.duplicate_of is None:
                    pipe.hset(story, "centroid", json.dumps(_rounded(view.centroid)))
                    for term in p.terms:
                        pipe.zadd(keys.story_term(term), {placed.story: now})
                        pipe.expire(keys.story_term(term), self.window_s)
                else:
                    pipe.hincrby(story, "duplicates", 1)
                pipe.hset(story, "last_seen", now)
                pipe.hincrby(story, "items", 1)
                pipe.expire(story, ttl)
                pipe.zadd(keys.story_items(placed.story), {item.id: now})
                pipe.expire(keys.story_items(placed.story), ttl)
                pipe.sadd(keys.story_sources(placed.story), item.source)
                pipe.expire(keys.story_sources(placed.story), ttl)
                pipe.zadd(keys.stories, {placed.story: now})
            pipe.zremrangebyscore(keys.stories, "-inf", now - ttl)
            await pipe.execute()

    async def recent(self, limit: int = 20) -> list[StorySummary]:
        """The stories that grew most recently, newest first, with their items."""
        keys = self.store.keys
        async with self.store.pipeline() as pipe:
            pipe.zrevrange(keys.stories, 0, limit - 1)
            (ids,) = await pipe.execute()
        async with self.store.pipeline() as pipe:
            for story in ids:
                pipe.hgetall(keys.story(story))
                pipe.smembers(keys.story_sources(story))
                pipe.zrange(keys.story_items(story), 0, -1)
            found = await pipe.execute()
        item_ids = sorted({i for index in range(len(ids)) for i in found[3 * index + 2]})
        async with self.store.pipeline() as pipe:
            for item in item_ids:
                pipe.hmget(keys.doc(item), ["title", "source", "url", "duplicate_of"])
            docs = dict(zip(item_ids, await pipe.execute(), strict=True))
        out: list[StorySummary] = []
        for index, story in enumerate(ids):
            info, sources, members = found[3 * index : 3 * index + 3]
            if not info:
                continue
            out.append(
                {
                    "id": story,
                    "title": info.get("title", ""),
                    "url": info.get("url") or None,
                    "items": int(info.get("items", 0)),
                    "duplicates": int(info.get("duplicates", 0)),
                    "sources": sorted(sources),
                    "first_seen": float(info.get("first_seen", 0)),
                    "last_seen": float(info.get("last_seen", 0)),
                    "members": [
                        {
                            "id": member,
                            "title": docs[member][0] or "",
                            "source": docs[member][1] or "",
                            "url": docs[member][2] or None,
                            "duplicate_of": docs[member][3] or None,
                        }
                        for member in members
                        if member in docs
                    ],
                }
            )
        return out


def _known(item: str, encoded: str | None, story: str | None) -> Known | None:
    fp = Fingerprint.decode(encoded) if encoded else None
    return Known(item, story, fp) if fp is not None and story else None


def _rounded(vector: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in vector.items() if math.isfinite(v)}
