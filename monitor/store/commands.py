"""How a Redis command is run here: library and socket errors become ``StoreError``; replies
are read back as plain numbers and strings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from monitor.errors import StoreError

__all__ = ["as_float", "as_int", "is_cluster", "strings", "translated"]


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster (typed as a plain client elsewhere)."""
    return isinstance(client, RedisCluster)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn redis and socket errors raised inside the block into ``StoreError`` (a cluster
    that cannot be reached or routed to included)."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:
        raise StoreError(f"Redis {action} failed: {exc}") from exc


def as_float(value: str) -> float | None:
    """A stored number, or None when what is stored is not one."""
    try:
        return float(value)
    except ValueError:
        return None


def as_int(reply: Any) -> int:
    """A count from a reply; 0 for an error reply (a key or group that does not exist yet)."""
    try:
        return int(reply)
    except (TypeError, ValueError):
        return 0


def strings(reply: Any) -> dict[str, str]:
    """A hash reply as ``str → str``; empty for an error reply or nothing."""
    return {str(k): str(v) for k, v in reply.items()} if isinstance(reply, dict) else {}
