"""SIGKILL a dispatcher in the middle of 200 alerts, start another: no alert arrives twice,
and none is lost silently.

Sends that were in flight when the process died (the test kills during a burst, so there are
some) are not sent again blindly: each becomes a dead letter saying it may have arrived, for an
operator to resend with `monitor alerts retry`. Every other alert arrives exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from monitor.dispatch import ORPHANED
from monitor.models import Alert, Item
from monitor.store import RedisServer, Store
from tests.channels.slack_server import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = 20  # Slack allows 1 message per second per channel: spread the 200 over 20
ALERTS = 200


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server
    assert server.errors == []


def alert(n: int) -> Alert:
    item = Item(id=f"wire:{n}", source="wire", title=f"Story {n}", text=f"Report number {n}.")
    return Alert(
        id=f"a{n:03d}",
        rule="r",
        rule_name="Rule",
        severity="high",
        item=item,
        story=f"s{n}",
        matches=(),
        channels=(f"slack-{n % CHANNELS}",),
    )


async def dispatcher(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--role",
        "dispatch",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def until(condition: Callable[[], Awaitable[bool]], within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sigkill_mid_batch_sends_nothing_twice_and_loses_nothing_silently(
    fake: FakeSlack, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    channels = "\n".join(
        f"  - {{id: slack-{n}, type: slack, webhook_url: '{fake.webhook_url}'}}"
        for n in range(CHANNELS)
    )
    (rules / "channels.yaml").write_text(f"channels:\n{channels}\n")
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env.pop("MONITOR_REDIS_URL", None)
    env.update(
        MONITOR_RULES_DIR=str(rules),
        MONITOR_DATA_DIR=str(tmp_path / "data"),  # the dispatchers join this embedded Redis
        MONITOR_RECLAIM_IDLE_S="1",
    )
    async with RedisServer.embedded(tmp_path / "data") as client:
        store = Store(client)
        await store.outbox.add_many(
            [
                {"channel": f"slack-{n % CHANNELS}", "alert": alert(n).to_dict()}
                for n in range(ALERTS)
            ]
        )

        async def some_delivered() -> bool:
            return len(fake.delivered) >= 40

        async def all_accounted_for() -> bool:
            orphans = {p["alert"]["id"] for _, p in await store.dead_letters()}
            return len(set(fake.delivered) | orphans) == ALERTS

        first = await dispatcher(env)
        await until(some_delivered, 60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert len(fake.delivered) < ALERTS  # killed in the middle

        second = await dispatcher(env)
        try:
            await until(all_accounted_for, 60)
            await asyncio.sleep(1.5)  # anything sent twice would arrive by now
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0
        assert [k for k, count in fake.delivered.items() if count != 1] == []  # none twice
        letters = await store.dead_letters()
        assert all(p["reason"] == ORPHANED for _, p in letters)
        assert len(letters) <= CHANNELS  # at most the one send in flight on each channel
        orphans = {p["alert"]["id"] for _, p in letters}
        assert sorted(set(fake.delivered) | orphans) == [f"a{n:03d}" for n in range(ALERTS)]
        assert await store.outbox.pending_count("dispatch") == 0
