"""``monitor sources``: a fetch of each source now, or the health the poll role keeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TypedDict

from monitor.app.settings import Settings
from monitor.app.wiring import build_sources, fetch_limits, open_store, redis_server
from monitor.core.rules import WatchConfig
from monitor.http import make_client
from monitor.ops.status import SourceRow, source_row
from monitor.store.snapshot import read_health

__all__ = ["SourceCheckRow", "check_sources", "source_health"]


class SourceCheckRow(TypedDict):
    """What one fetch of one source gave (``sources check``)."""

    id: str
    url: str
    status: int | None
    entries: int
    bytes: int
    seconds: float
    error: str | None
    bozo: str | None
    skipped: list[str]


async def check_sources(settings: Settings, config: WatchConfig) -> list[SourceCheckRow]:
    """Fetch every enabled source once, concurrently, without state: what each one gives now."""
    limits = fetch_limits(settings)
    async with make_client(limits) as client:
        sources = build_sources(config, client, limits)
        results = await asyncio.gather(*(s.source.fetch({}) for s in sources))
    return [
        {
            "id": scheduled.id,
            "url": getattr(scheduled.source, "url", None)
            or str(getattr(scheduled.source, "path", "")),
            "status": result.status,
            "entries": len(result.items),
            "bytes": result.bytes_read,
            "seconds": round(result.elapsed_s, 3),
            "error": result.error,
            "bozo": result.bozo,
            "skipped": list(result.problems),
        }
        for scheduled, result in zip(sources, results, strict=True)
    ]


async def source_health(settings: Settings, config: WatchConfig) -> list[SourceRow]:
    """Each configured source with the health the poll role keeps in Redis (``sources list``):
    the same rows as ``monitor status``, read in one round trip."""
    async with redis_server(settings) as client:
        stored = await read_health(
            open_store(client, settings), [spec.id for spec in config.sources]
        )
    now = datetime.now(UTC)
    return [source_row(spec, stored[spec.id], now) for spec in config.sources]
