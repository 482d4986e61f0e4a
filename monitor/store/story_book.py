"""Stories as people read and correct them: the recent ones, why each member joined, and the
two corrections, split and merge.

A correction rewrites the stories of the items it moves, so later items, which join the story
of the earlier item they best match, respect it. A correction holds a lease in Redis while it
runs, and no batch is written into stories meanwhile; it then counts itself as a placement
and logs "*", so a batch that read before it reads everything again (``store.stories``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypedDict

from monitor.core.stories import shared_terms
from monitor.errors import StoreError
from monitor.store import Store
from monitor.store.documents import decode_vector
from monitor.store.stories import (
    LOG_KEPT,
    LOG_TTL_S,
    PLACEMENT_WAIT_S,
    PLACEMENTS_TTL_S,
    story_id,
)

SHARED_SHOWN = 8  # shared terms shown per member by --explain
CORRECTION_LEASE_MS = 30_000  # far longer than a correction; frees itself if its process dies


async def until_locked(take: Callable[[], Awaitable[bool]]) -> None:
    """Call ``take`` (an attempt at the correction lease, True once it is had) until it
    succeeds, backing off from 2 ms to 50 ms; ``StoreError`` after ``PLACEMENT_WAIT_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PLACEMENT_WAIT_S
    pause = 0.002
    while not await take():
        if loop.time() > deadline:
            raise StoreError(
                f"story correction: another one held the lease for over {PLACEMENT_WAIT_S:g} s"
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)


@asynccontextmanager
async def exclusive(store: Store) -> AsyncIterator[None]:
    """Hold the correction lease (Redis, with a TTL should this process die), waiting for
    another correction to end. No batch is written into stories while it is held."""
    owner = uuid.uuid4().hex
    await until_locked(lambda: store.acquire_correction(owner, CORRECTION_LEASE_MS))
    try:
        yield
    finally:
        await store.release_correction(owner)


def corrected(store: Store, pipe: Any) -> None:
    """Queue on ``pipe`` what tells process workers a correction was made: the count of
    corrections (they forget the stories of the items they hold) and a placement logged as
    "*" (a batch read before it is read again)."""
    keys = store.keys
    pipe.incr(keys.corrections)
    pipe.lpush(keys.placement_log, "*")
    pipe.ltrim(keys.placement_log, 0, LOG_KEPT - 1)
    pipe.expire(keys.placement_log, LOG_TTL_S)
    pipe.incr(keys.placements)
    pipe.expire(keys.placements, PLACEMENTS_TTL_S)


class StoryMember(TypedDict):
    """One item of a story, as ``monitor stories`` lists it."""

    id: str
    title: str
    source: str
    url: str | None
    duplicate_of: str | None


def iso(epoch: float) -> str:
    """A time as every JSON output gives it: ISO 8601 with its offset (UTC)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class StorySummary(TypedDict):
    """One story, as ``monitor stories`` (and ``--json``) shows it."""

    id: str
    title: str
    url: str | None
    items: int
    duplicates: int
    sources: list[str]
    first_seen: str  # ISO 8601 with offset
    last_seen: str
    members: list[StoryMember]


class Joined(TypedDict):
    """Why one member is in its story (``monitor stories --explain``)."""

    id: str
    title: str
    source: str
    how: str  # "first report" (of this story, or of one merged into it), "duplicate", "matched"
    matched: str | None
    matched_title: str | None
    similarity: float
    confident: bool
    shared: list[tuple[str, float]]  # the terms it shares with the matched item, and their part


class StoryBook:
    """Reads stories for people, and applies their corrections."""

    def __init__(self, store: Store, *, ttl_s: int = 30 * 86400) -> None:
        self.store = store
        self.ttl_s = ttl_s

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
        docs = dict(
            zip(
                item_ids,
                await self._docs(item_ids, ["title", "source", "url", "duplicate_of"]),
                strict=True,
            )
        )
        out: list[StorySummary] = []
        for index, story in enumerate(ids):
            info, sources, members = found[3 * index : 3 * index + 3]
            if not info or info.get("merged_into"):
                continue
            out.append(
                {
                    "id": story,
                    "title": info.get("title", ""),
                    "url": info.get("url") or None,
                    "items": int(info.get("items", 0)),
                    "duplicates": int(info.get("duplicates", 0)),
                    "sources": sorted(sources),
                    "first_seen": iso(float(info.get("first_seen", 0))),
                    "last_seen": iso(float(info.get("last_seen", 0))),
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

    async def _docs(self, items: Sequence[str], fields: list[str]) -> list[list[str | None]]:
        async with self.store.pipeline() as pipe:
            for item in items:
                pipe.hmget(self.store.keys.doc(item), fields)
            return list(await pipe.execute())

    async def explain(self, story: str) -> list[Joined]:
        """Each member of ``story`` in order of arrival, with why it joined: the item it matched,
        their similarity, and the terms they share with each one's part of it."""
        keys = self.store.keys
        async with self.store.pipeline() as pipe:
            pipe.zrange(keys.story_items(story), 0, -1)
            (members,) = await pipe.execute()
        if not members:
            raise StoreError(f"no story {story!r} (it may have expired)")
        fields = ["title", "source", "matched", "similarity", "confident", "duplicate_of", "vector"]
        docs = dict(zip(members, await self._docs(members, fields), strict=True))
        others = sorted({d[2] for d in docs.values() if d[2] and d[2] not in docs})
        for item, values in zip(others, await self._docs(others, fields), strict=True):
            docs[item] = values
        out: list[Joined] = []
        for member in members:
            title, source, matched, similarity, confident, duplicate_of, vector = docs[member]
            other = docs.get(matched) if matched else None
            shared: list[tuple[str, float]] = []
            if other is not None and vector and other[6]:
                shared = [
                    (term, round(part, 4))
                    for term, part in shared_terms(decode_vector(vector), decode_vector(other[6]))
                ][:SHARED_SHOWN]
            how = "duplicate" if duplicate_of else "matched" if matched else "first report"
            out.append(
                {
                    "id": member,
                    "title": title or "",
                    "source": source or "",
                    "how": how,
                    "matched": matched or None,
                    "matched_title": (other[0] or "") if other else None,
                    "similarity": float(similarity or 0),
                    "confident": confident != "0",
                    "shared": shared,
                }
            )
        return out

    async def split(self, item: str) -> tuple[str, str]:
        """Take ``item`` out of its story into a story of its own; returns (old, new) story.
        Later items that best match it join the new story."""
        keys = self.store.keys
        async with exclusive(self.store):
            (values,) = await self._docs([item], ["story", "title", "url", "source", "seen"])
            old, title, url, source, seen = values
            if not old:
                raise StoreError(f"no item {item!r} (it may have expired)")
            new = story_id(f"{item}#split")
            async with self.store.pipeline() as pipe:
                pipe.hset(keys.doc(item), mapping={"story": new, "matched": "", "confident": 1})
                pipe.zrem(keys.story_items(old), item)
                pipe.hincrby(keys.story(old), "items", -1)
                pipe.hset(
                    keys.story(new),
                    mapping={
                        "title": title or "",
                        "url": url or "",
                        "first_seen": seen or 0,
                        "last_seen": seen or 0,
                        "items": 1,
                        "split_from": old,
                    },
                )
                pipe.expire(keys.story(new), self.ttl_s)
                pipe.zadd(keys.story_items(new), {item: float(seen or 0)})
                pipe.expire(keys.story_items(new), self.ttl_s)
                pipe.sadd(keys.story_sources(new), source or "")
                pipe.expire(keys.story_sources(new), self.ttl_s)
                pipe.zadd(keys.stories, {new: float(seen or 0)})
                corrected(self.store, pipe)
                pipe.zrange(keys.story_items(old), 0, -1)
                *_, remaining = await pipe.execute()
            await self._recount_sources(old, remaining)
        return old, new

    async def _recount_sources(self, story: str, members: Sequence[str]) -> None:
        sources = {values[0] for values in await self._docs(members, ["source"]) if values[0]}
        key = self.store.keys.story_sources(story)
        async with self.store.pipeline() as pipe:
            pipe.delete(key)
            if sources:
                pipe.sadd(key, *sorted(sources))
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def merge(self, into: str, other: str) -> int:
        """Move every item of story ``other`` into story ``into``; returns how many moved.
        Later items that best match any of them join ``into``."""
        if into == other:
            raise StoreError("a story cannot be merged into itself")
        keys = self.store.keys
        async with exclusive(self.store):
            async with self.store.pipeline() as pipe:
                pipe.exists(keys.story(into))
                pipe.zrange(keys.story_items(other), 0, -1, withscores=True)
                pipe.hmget(keys.story(other), ["items", "duplicates"])
                pipe.smembers(keys.story_sources(other))
                exists, members, (items, duplicates), sources = await pipe.execute()
            if not exists:
                raise StoreError(f"no story {into!r} (it may have expired)")
            if not members:
                raise StoreError(f"no story {other!r} (it may have expired)")
            async with self.store.pipeline() as pipe:
                for member, _ in members:
                    pipe.hset(keys.doc(member), "story", into)
                pipe.zadd(keys.story_items(into), dict(members))
                if sources:
                    pipe.sadd(keys.story_sources(into), *sources)
                pipe.hincrby(keys.story(into), "items", int(items or 0))
                pipe.hincrby(keys.story(into), "duplicates", int(duplicates or 0))
                pipe.hset(keys.story(other), "merged_into", into)
                pipe.delete(keys.story_items(other), keys.story_sources(other))
                pipe.zrem(keys.stories, other)
                corrected(self.store, pipe)
                await pipe.execute()
        return len(members)
