"""Fixtures for the HTTP sources: a real server on 127.0.0.1 and a client with small limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.http import FetchLimits, make_client
from tests.sources.http_server import Server

# Small enough that every hostile case ends within a few seconds; the body cap is the real one.
LIMITS = FetchLimits(connect_s=2.0, read_s=1.0, total_s=3.0, max_bytes=10_000_000, per_host=2)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    started = await Server().start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
def limits() -> FetchLimits:
    return LIMITS


@pytest.fixture
async def client(limits: FetchLimits) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(limits, trust_env=False) as made:
        yield made
