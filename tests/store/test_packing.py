"""Commands packed by hiredis are the bytes redis-py's own packer writes, and run on Redis."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from monitor.store import Store
from monitor.store.commands import is_cluster
from monitor.store.packing import PackedConnection, PackedUnixConnection, packed
from monitor.store.wire import Counted

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "k", "value"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", 1.5, 0.1 + 0.2, -3, 10**12),
    ("HSET", "h", "titre", "Révolution à Caracas — 東京", b"\x00\xff\x10"),
    ("SCRIPT LOAD", "return 1"),
    (b"CLIENT SETNAME", b"me"),
    ("XADD", "s", "*", "data", bytearray(b"abc"), memoryview(b"xyz")),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_hiredis_packs_the_bytes_redis_py_would(command: tuple[Any, ...]) -> None:
    ours, theirs = packed(Connection)(), Connection()
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))


def test_a_value_neither_packs_is_a_data_error() -> None:
    with pytest.raises(DataError):
        packed(Connection)().pack_command("SET", "k", object())


def test_only_redis_pys_own_connections_are_replaced() -> None:
    assert issubclass(packed(UnixDomainSocketConnection), UnixDomainSocketConnection)

    class Other(Connection):
        pass

    assert packed(Other) is Other


async def test_the_store_talks_to_redis_through_packed_commands_and_the_bench_counts_them(
    store: Store,
) -> None:
    if not is_cluster(store.client):  # the cluster client keeps redis-py's packer
        pool = store.client.connection_pool
        assert pool.connection_class in (PackedConnection, PackedUnixConnection)
    key = store.keys.prefix + "packed"
    with Counted() as wire:
        await store.client.hset(key, mapping={"title": "Révolution à Caracas", "n": 1.25})
        assert await store.client.hgetall(key) == {"title": "Révolution à Caracas", "n": "1.25"}
    assert wire.commands >= 2
