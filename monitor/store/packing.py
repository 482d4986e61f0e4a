"""Commands packed for the wire by hiredis (C) instead of redis-py's asyncio client, which packs
every argument in Python, on the event loop: story placement's write sends thousands of
arguments a batch, and packing them held the loop for tens of milliseconds (a dispatcher in the
same process waited that long).

``packed(cls)`` is a connection class of redis-py's that packs with ``hiredis.pack_command``
(the same bytes: strings as UTF-8, numbers as their ``repr``); the clients of one server and of
the embedded one use it (``server.py``). The cluster client keeps redis-py's packer.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

__all__ = ["HiredisPacking", "packed"]


class HiredisPacking:
    """Packs a command with hiredis; a command name with a space ("SCRIPT LOAD") is sent as
    its words, as redis-py does."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        # Typed by hiredis as a tuple of one value; it takes any number. It refuses a
        # bytearray or a memoryview: only then is each argument looked at (thousands a batch).
        values: Any = args
        try:
            return [hiredis.pack_command(values)]
        except TypeError:
            values = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
        try:
            return [hiredis.pack_command(values)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc


class PackedConnection(HiredisPacking, Connection):
    pass


class PackedUnixConnection(HiredisPacking, UnixDomainSocketConnection):
    pass


class PackedSSLConnection(HiredisPacking, SSLConnection):
    pass


_PACKED: dict[type[Any], type[Any]] = {
    Connection: PackedConnection,
    UnixDomainSocketConnection: PackedUnixConnection,
    SSLConnection: PackedSSLConnection,
}


def packed(cls: type[Any]) -> type[Any]:
    """``cls`` packing with hiredis, when it is one of redis-py's own; else ``cls``."""
    return _PACKED.get(cls, cls)
