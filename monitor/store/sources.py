"""What a source keeps between polls: its state (ETag, cursors), its health, and its lease."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from monitor.store.commands import translated
from monitor.store.keys import Keys

__all__ = ["ACQUIRE_LEASE", "RELEASE_LEASE", "SourceState"]

ACQUIRE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
return 0
"""


RELEASE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class SourceState:
    """Per-source state, health and lease (one poller per source across processes)."""

    client: Redis
    keys: Keys
    seen_ttl: int
    _acquire_lease: AsyncScript
    _release_lease: AsyncScript

    async def get_state(self, source: str) -> dict[str, str]:
        """A source's polling state (empty when none was stored or it expired)."""
        with translated("HGETALL source state"):
            state = await self.client.hgetall(self.keys.source_state(source))
        return {str(name): str(value) for name, value in state.items()}

    async def set_state(self, source: str, mapping: Mapping[str, str | int | float | None]) -> None:
        """Update fields of a source's state; a None value deletes the field.

        The hash expires ``seen_ttl`` after its last update, so removed sources leave nothing.
        """
        if not mapping:
            return
        key = self.keys.source_state(source)
        values = [part for name, v in mapping.items() if v is not None for part in (name, str(v))]
        removed = [name for name, value in mapping.items() if value is None]
        with translated("HSET source state"):
            async with self.client.pipeline(transaction=False) as pipe:
                if values:
                    pipe.hset(key, items=values)
                if removed:
                    pipe.hdel(key, *removed)
                pipe.expire(key, self.seen_ttl)
                await pipe.execute()

    async def get_health(self, source: str) -> dict[str, str]:
        """A source's health record (empty when it was never polled or it expired)."""
        with translated("HGETALL health"):
            health = await self.client.hgetall(self.keys.health(source))
        return {str(name): str(value) for name, value in health.items()}

    async def set_health(self, source: str, mapping: Mapping[str, str]) -> None:
        """Replace a source's health record; it expires ``seen_ttl`` after the last poll."""
        key = self.keys.health(source)
        with translated("HSET health"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, items=[part for pair in mapping.items() for part in pair])
                pipe.expire(key, self.seen_ttl)
                await pipe.execute()

    async def acquire_lease(self, source: str, owner: str, ttl_ms: int) -> bool:
        """Own ``source`` for ``ttl_ms`` unless another owner holds it; renewing is acquiring.

        One poller per source across processes: the lease expires by itself if its owner dies.
        """
        with translated("lease acquire"):
            won = await self._acquire_lease(keys=[self.keys.lease(source)], args=[owner, ttl_ms])
        return bool(won)

    async def release_lease(self, source: str, owner: str) -> bool:
        """Give ``source`` up, only if ``owner`` still holds it; True when it did."""
        with translated("lease release"):
            released = await self._release_lease(keys=[self.keys.lease(source)], args=[owner])
        return bool(released)

    async def acquire_correction(self, owner: str, ttl_ms: int) -> bool:
        """Own story corrections for ``ttl_ms``: one split or merge at a time, and no batch is
        written into stories meanwhile (``story_scripts.PLACE`` waits for it)."""
        with translated("story correction lease"):
            won = await self._acquire_lease(keys=[self.keys.correcting], args=[owner, ttl_ms])
        return bool(won)

    async def release_correction(self, owner: str) -> None:
        with translated("story correction lease"):
            await self._release_lease(keys=[self.keys.correcting], args=[owner])
