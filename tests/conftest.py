"""Shared fixtures. Redis: the embedded server always, and the server at
``MONITOR_TEST_REDIS_URL`` when that is set; the same tests run on each. A local HTTP server
(``tests/sources/http_server.py``) and a client with small limits; a local Slack."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from monitor.http import FetchLimits, make_client
from monitor.store import Store
from monitor.store.server import RedisServer
from tests.channels.slack_server import FakeSlack
from tests.cluster import local_cluster
from tests.sources.http_server import Server

TEST_REDIS_URL = os.environ.get("MONITOR_TEST_REDIS_URL") or None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that assert a peak memory (``peak_memory``) run first: the peak is the process's
    whole life (a child it starts inherits it), and other tests load word-frequency tables of
    hundreds of MB."""
    items.sort(key=lambda item: item.get_closest_marker("peak_memory") is None)


REDIS_KINDS = ["embedded", "server"] if TEST_REDIS_URL else ["embedded"]
WITH_CLUSTER = [*REDIS_KINDS, "cluster"]
"""The kinds the store tests and the scale-out test run on: a local Redis Cluster as well."""


@pytest.fixture(params=REDIS_KINDS)
async def redis_client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Redis]:
    """A connected client of each Redis on offer, its database flushed before and after."""
    async with connected(request, tmp_path) as client:
        yield client


@asynccontextmanager
async def connected(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Redis]:
    """A client of the Redis ``request.param`` names, flushed before and after."""
    if request.param == "server":
        assert TEST_REDIS_URL is not None
        server = RedisServer.from_url(TEST_REDIS_URL)
    elif request.param == "cluster":
        server = RedisServer.from_url(request.getfixturevalue("redis_cluster"))
    else:
        server = RedisServer.embedded(tmp_path / "redis")
    async with server as client:
        await client.flushdb()
        yield client
        await client.flushdb()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis Cluster of three masters on loopback ports, for the whole session; its
    ``redis+cluster://`` URL."""
    with local_cluster(tmp_path_factory.mktemp("cluster")) as url:
        yield url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses, so tests can share a database."""
    return f"test-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def store(redis_client: Redis, key_prefix: str) -> Store:
    """A ``Store`` on ``redis_client`` whose keys start with ``key_prefix``."""
    return Store(redis_client, prefix=key_prefix)


class RoundTrips:
    """Counts writes of commands to Redis: a pipeline is one write, then its replies are read."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    send = AbstractConnection.send_packed_command

    async def counting(
        self: AbstractConnection, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        counter.count += 1
        await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counter


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """A local Slack on a free loopback port (``tests/channels/slack_server.py``); the test
    fails if the fake itself broke while serving it."""
    async with FakeSlack() as server:
        yield server
    assert server.errors == []


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
