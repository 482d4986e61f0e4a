"""What redis-py writes to Redis, counted: for ``monitor bench``, which reports commands and round
trips per item exactly (they do not depend on the machine's load, unlike timings)."""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import AbstractConnection

from monitor.store.packing import HiredisPacking


class Counted:
    """Counts what redis-py writes: packed commands, and writes to a socket (round trips)."""

    def __init__(self) -> None:
        self.commands = 0
        self.writes = 0

    def __enter__(self) -> Counted:
        self._class = AbstractConnection
        self._pack, self._send = (
            AbstractConnection.pack_command,
            AbstractConnection.send_packed_command,
        )
        self._hiredis_pack = HiredisPacking.pack_command
        wire = self

        def pack(connection: Any, *args: Any) -> Any:
            wire.commands += 1
            return wire._pack(connection, *args)

        def pack_hiredis(connection: Any, *args: Any) -> Any:
            wire.commands += 1
            return wire._hiredis_pack(connection, *args)

        async def send(connection: Any, command: Any, check_health: bool = True) -> None:
            wire.writes += 1
            await wire._send(connection, command, check_health)

        AbstractConnection.pack_command = pack  # type: ignore[method-assign,assignment]
        HiredisPacking.pack_command = pack_hiredis  # type: ignore[method-assign,assignment]
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self._class.pack_command = self._pack  # type: ignore[method-assign]
        HiredisPacking.pack_command = self._hiredis_pack  # type: ignore[method-assign]
        self._class.send_packed_command = self._send  # type: ignore[method-assign]
