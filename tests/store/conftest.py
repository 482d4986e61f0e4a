"""The store tests run on a local Redis Cluster too (``tests/cluster.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.conftest import WITH_CLUSTER, connected


@pytest.fixture(params=WITH_CLUSTER)
async def redis_client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Redis]:
    """A connected client of each Redis on offer, a Redis Cluster included."""
    async with connected(request, tmp_path) as client:
        yield client
