"""Redis, the only shared state, behind one ``Store``.

Every Redis command newsmonitor sends lives in this package: the key schema (``keys.py``), the
streams and their wire format (``streams.py``), the server (``server.py``), and one module per
domain (``seen.py``, ``sources.py``, ``delivery.py``, ``problems.py``, ``stories.py``,
``snapshot.py``). Batches cost one round trip whatever their size; every dedup and claim key has
a TTL; redis exceptions become ``StoreError`` at this boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from monitor.store.commands import is_cluster, translated
from monitor.store.delivery import RELEASE_HOLD, Deliveries
from monitor.store.history import History
from monitor.store.keys import Keys
from monitor.store.problems import Problems
from monitor.store.quiet import Quiet
from monitor.store.seen import SeenKeys
from monitor.store.sources import ACQUIRE_LEASE, RELEASE_LEASE, SourceState
from monitor.store.streams import Stream

__all__ = ["DEFAULT_PREFIX", "DEFAULT_SEEN_TTL", "DEFAULT_STREAM_MAXLEN", "Store"]

DEFAULT_PREFIX: Final = "monitor:"
DEFAULT_SEEN_TTL: Final = 30 * 86400
DEFAULT_STREAM_MAXLEN: Final = 100_000
DEFAULT_HISTORY_S: Final = 48 * 3600
DEFAULT_HISTORY_MAX: Final = 50_000


def hash_tagged(prefix: str) -> str:
    """A key prefix whose keys all hash to one Redis Cluster slot: ``monitor:`` becomes
    ``{monitor}:``, so every script and multi-key command of a store stays on one node (a prefix
    that already holds a tag is kept)."""
    if "{" in prefix and "}" in prefix.partition("{")[2]:
        return prefix
    name = prefix.rstrip(":")
    return "{" + name + "}" + prefix[len(name) :]


class Store(SeenKeys, SourceState, Deliveries, Problems, Quiet):
    """newsmonitor's state in Redis: dedup and claim keys, source state, leases, the streams.

    The store does not own ``client``: whoever opened it (``RedisServer``) closes it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        seen_ttl: int = DEFAULT_SEEN_TTL,
        stream_maxlen: int = DEFAULT_STREAM_MAXLEN,
        streams: str = "",
        history_s: int = DEFAULT_HISTORY_S,
        history_max: int = DEFAULT_HISTORY_MAX,
    ) -> None:
        """``streams`` gives this store private items, outbox and dead-letter streams: it shares
        the seen, story and claim keys with the daemon's, never its queues."""
        self.client = client
        self.keys = Keys(hash_tagged(prefix) if is_cluster(client) else prefix, streams)
        self.seen_ttl = seen_ttl
        self.items = Stream(client, self.keys.items_stream, stream_maxlen)
        self.outbox = Stream(client, self.keys.outbox_stream, stream_maxlen)
        self.dead = Stream(client, self.keys.dead_stream, stream_maxlen)
        self.history = History(client, self.keys.history, history_s, history_max)
        self._acquire_lease = client.register_script(ACQUIRE_LEASE)
        self._release_lease = client.register_script(RELEASE_LEASE)
        self._release_hold = client.register_script(RELEASE_HOLD)

    def __repr__(self) -> str:
        return f"Store(prefix={self.keys.prefix!r})"

    async def drop_streams(self) -> None:
        """Delete this store's streams and delayed queue (a private replay's, when done)."""
        keys = self.keys
        with translated("DEL streams"):
            for key in (
                keys.items_stream,
                keys.outbox_stream,
                keys.dead_stream,
                keys.delayed,
                keys.holds,
            ):
                await self.client.delete(key)

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[Pipeline]:
        """A non-transactional pipeline (one round trip); redis errors become ``StoreError``."""
        with translated("pipeline"):
            async with self.client.pipeline(transaction=False) as pipe:
                yield pipe

    async def ping(self) -> bool:
        """Whether Redis answers; for health checks, so it never raises."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False
