"""Seen and claim keys: ``SET NX`` with a TTL, a whole batch in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from redis.asyncio import Redis

from monitor.core.dedup import canonical_url
from monitor.models import Item
from monitor.store.commands import translated
from monitor.store.keys import Keys

__all__ = ["SeenKeys", "seen_key", "seen_keys"]


def seen_key(keys: Keys, item: Item) -> str:
    """The level-1 key of an item from its source and GUID (its id when it has none)."""
    return keys.seen(item.source, item.guid or item.id)


def seen_keys(keys: Keys, item: Item) -> list[str]:
    """The level-1 keys of an item: source + GUID, and its canonical URL when that identifies
    it: not a site's root page, not a link other entries of its feed share (``shared_url``)."""
    url = canonical_url(item.url) if item.url and not item.shared_url else None
    if url is not None and _is_site_root(url):
        url = None
    return [seen_key(keys, item), *([keys.seen_url(url)] if url else [])]


def _is_site_root(url: str) -> bool:
    """``https://host/`` (no path, no query): a home page, never one entry's own address."""
    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query


class SeenKeys:
    """What was seen (items by GUID and URL) and who claimed a (rule, story) first."""

    client: Redis
    keys: Keys
    seen_ttl: int

    async def seen_batch(self, keys: list[str], ttl_s: int | None = None) -> list[bool]:
        """Mark ``keys`` seen for ``ttl_s`` (default ``seen_ttl``); True where a key was new.

        ``SET key 1 NX EX ttl`` per key in one pipeline: one round trip per batch. A key that
        appears twice in a batch is new only the first time.
        """
        ttl = self.seen_ttl if ttl_s is None else ttl_s
        return await self.set_once([(key, "1", ttl) for key in keys])

    async def claim_batch(self, keys: list[str], ttl_s: int, value: str) -> list[bool]:
        """Claim ``keys`` (``Keys.claim``) for ``ttl_s`` with ``value``; True where this call won.

        A (rule, story) claim decides which alert is the first: the winner alerts, later items
        of the story become follow-ups until the claim expires (the rule's cooldown).
        """
        return await self.set_once([(key, value, ttl_s) for key in keys])

    async def set_once(
        self, entries: Sequence[tuple[str, str, int]], *, reentrant: bool = False
    ) -> list[bool]:
        """``SET key value NX EX ttl`` for each ``(key, value, ttl)`` in one pipeline.

        True where the key was new and is now set. With ``reentrant``, also where the key already
        holds ``value``: the process role stores the stream entry id, so an entry redelivered
        after a crash between this step and its acknowledgement finishes its own work instead of
        being dropped as a duplicate of itself. ``seen_batch`` and ``claim_batch`` are this with
        one value and TTL for the whole batch. Every TTL must be at least 1 s.
        """
        if not entries:
            return []
        if any(ttl_s < 1 for _, _, ttl_s in entries):
            raise ValueError("a dedup or claim key needs a TTL of at least 1 s")
        with translated("SET NX"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value, ttl_s in entries:
                    pipe.set(key, value, nx=True, ex=ttl_s)
                    if reentrant:
                        pipe.get(key)
                results = await pipe.execute()
        if not reentrant:
            return [bool(result) for result in results]
        return [
            bool(was_set) or held == value
            for (_, value, _), was_set, held in zip(
                entries, results[0::2], results[1::2], strict=True
            )
        ]

    async def exists_many(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key exists, in one round trip."""
        if not keys:
            return []
        with translated("EXISTS"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(key)
                return [bool(found) for found in await pipe.execute()]
