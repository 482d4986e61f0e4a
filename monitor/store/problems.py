"""Operator problems that are out (a source or channel failing) and channel failure counts."""

from __future__ import annotations

from redis.asyncio import Redis

from monitor.store.commands import as_float, translated
from monitor.store.keys import Keys

__all__ = ["Problems"]


class Problems:
    """Raised once across daemons, cleared once, listed for ``/healthz`` and ``monitor status``."""

    client: Redis
    keys: Keys
    seen_ttl: int

    async def raise_problem(self, kind: str, target: str, at: float) -> bool:
        """True for the first daemon to report this problem since it was last cleared."""
        with translated("SET problem"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.problem(kind, target), f"{at:.3f}", nx=True, ex=self.seen_ttl)
                pipe.sadd(self.keys.problems, f"{kind}:{target}")
                won, _ = await pipe.execute()
        return bool(won)

    async def forget_problem(self, kind: str, target: str) -> None:
        """Undo ``raise_problem`` when its alert could not be queued, so it is raised again."""
        with translated("DEL problem"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(self.keys.problem(kind, target))
                pipe.srem(self.keys.problems, f"{kind}:{target}")
                await pipe.execute()

    async def clear_problem(self, kind: str, target: str) -> float | None:
        """When the problem was raised, for the one daemon that clears it; else None."""
        with translated("GETDEL problem"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.getdel(self.keys.problem(kind, target))
                pipe.srem(self.keys.problems, f"{kind}:{target}")
                value, _ = await pipe.execute()
        return as_float(str(value)) if value is not None else None

    async def problems(self) -> dict[str, float]:
        """Every operator alert that is out: ``kind:target`` → when it was raised."""
        with translated("SMEMBERS problems"):
            names = sorted(str(n) for n in await self.client.smembers(self.keys.problems))
            if not names:
                return {}
            keys = [self.keys.problem(*name.split(":", 1)) for name in names]
            values = await self.client.mget(keys)
        return {
            name: as_float(str(value)) or 0.0
            for name, value in zip(names, values, strict=True)
            if value is not None
        }

    async def count_failure(self, channel: str) -> int:
        with translated("INCR failures"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(self.keys.failures(channel))
                pipe.expire(self.keys.failures(channel), 86400)
                count, _ = await pipe.execute()
        return int(count)

    async def reset_failures(self, channel: str) -> None:
        with translated("DEL failures"):
            await self.client.delete(self.keys.failures(channel))
