"""Recovery after SIGKILL without waiting for the idle timeout: a restarted daemon (or any
other process) takes over the dead one's pending alerts and its sends in flight as soon as the
dead one's heartbeat lapses, while ``MONITOR_RECLAIM_IDLE_S`` stays at its two minutes."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import pytest

from monitor.store import Store
from monitor.store.server import RedisServer
from tests.channels.slack_server import FakeSlack, Reply
from tests.channels.test_exactly_once import (
    ALERTS,
    CHANNELS,
    alert,
    bot_channels,
    dispatcher,
    environment,
    until,
)

RECLAIM_IDLE_S = 120


@pytest.mark.slow
async def test_a_restart_after_sigkill_delivers_everything_long_before_the_idle_timeout(
    fake: FakeSlack, tmp_path: Path
) -> None:
    env = {
        **environment(tmp_path, bot_channels(fake)),
        "MONITOR_RECLAIM_IDLE_S": str(RECLAIM_IDLE_S),
    }
    log = tmp_path / "dispatch.log"
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

        async def held() -> bool:
            return not fake.pending_plans()

        async def all_delivered() -> bool:
            return len(fake.delivered) == ALERTS

        first = await dispatcher(env, log)
        await until(some_delivered, 60)
        fake.plan(Reply(delay_s=300), Reply(accept_then_wait_s=300))  # two sends in flight
        await until(held, 30)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert len(fake.delivered) < ALERTS

        loop = asyncio.get_running_loop()
        restarted = loop.time()
        second = await dispatcher(env, log)
        try:
            # Far sooner than the idle timeout would allow: the dead heartbeat is what counts.
            await until(all_delivered, RECLAIM_IDLE_S / 3)
            took_s = loop.time() - restarted
            await asyncio.sleep(1.5)  # anything sent twice would arrive by now
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0
        assert [k for k, count in fake.delivered.items() if count != 1] == []
        assert await store.outbox.pending_count("dispatch") == 0
        logging.getLogger(__name__).warning("recovered in %.1f s", took_s)  # docs/hardening.md
