"""SIGKILL a dispatcher in the middle of 200 alerts, start another.

With a bot token the local Slack receives each alert exactly once: a send that was in flight
when its dispatcher died is looked up in the channel's history (by the message metadata every
alert carries) and sent again only if it never arrived. The test makes both cases happen: one
request is held before Slack accepts it (the message never arrives), one after (it arrives but
the dispatcher never hears back).

An incoming webhook cannot be asked; with ``uncertain: dead_letter`` such a send becomes a dead
letter for an operator, and still nothing arrives twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from monitor.models import Alert
from monitor.roles.dispatch import ORPHANED
from monitor.store import Store
from monitor.store.server import RedisServer
from tests.channels.slack_server import FakeSlack, Reply
from tests.factories import make_alert, make_item

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = 20  # Slack allows 1 message per second per channel: spread the 200 over 20
ALERTS = 200


def alert(n: int) -> Alert:
    item = make_item(f"wire:{n}", source="wire", title=f"Story {n}", text=f"Report number {n}.")
    return make_alert(f"a{n:03d}", item=item, story=f"s{n}", channels=(f"slack-{n % CHANNELS}",))


async def dispatcher(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--role",
            "dispatch",
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


async def until(condition: Callable[[], Awaitable[bool]], within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


def bot_channels(fake: FakeSlack) -> str:
    """``CHANNELS`` Slack channels posting with a bot token to the local Slack."""
    return "\n".join(
        f"  - {{id: slack-{n}, type: slack, token: {fake.token}, channel: C{n},"
        f" api_url: '{fake.api_url}'}}"
        for n in range(CHANNELS)
    )


def environment(tmp_path: Path, channels: str) -> dict[str, str]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "channels.yaml").write_text(f"channels:\n{channels}\n")
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env.pop("MONITOR_REDIS_URL", None)
    env.update(
        MONITOR_RULES_DIR=str(rules),
        MONITOR_DATA_DIR=str(tmp_path / "data"),  # the dispatchers join this embedded Redis
        MONITOR_RECLAIM_IDLE_S="1",
        MONITOR_HTTP_PORT="0",
    )
    return env


async def kill_mid_run(
    fake: FakeSlack, env: dict[str, str], store: Store, settled: Callable[[], Awaitable[bool]]
) -> None:
    """Start a dispatcher, let 40 alerts arrive, hold two requests (one before Slack accepts
    it, one after), SIGKILL it, start another and wait until ``settled``."""
    await store.outbox.add_many(
        [{"channel": f"slack-{n % CHANNELS}", "alert": alert(n).to_dict()} for n in range(ALERTS)]
    )

    async def some_delivered() -> bool:
        return len(fake.delivered) >= 40

    async def both_held() -> bool:
        return not fake.pending_plans()

    first = await dispatcher(env, Path(env["MONITOR_DATA_DIR"]).parent / "first.log")
    await until(some_delivered, 60)
    fake.plan(Reply(delay_s=120), Reply(accept_then_wait_s=120))
    await until(both_held, 30)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert len(fake.delivered) < ALERTS  # killed in the middle

    second = await dispatcher(env, Path(env["MONITOR_DATA_DIR"]).parent / "second.log")
    try:
        await until(settled, 90)
        await asyncio.sleep(1.5)  # anything sent twice would arrive by now
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0


@pytest.mark.slow
async def test_sigkill_mid_batch_with_a_bot_token_delivers_each_alert_exactly_once(
    fake: FakeSlack, tmp_path: Path
) -> None:
    env = environment(tmp_path, bot_channels(fake))
    async with RedisServer.embedded(tmp_path / "data") as client:
        store = Store(client)

        async def all_delivered() -> bool:
            return len(fake.delivered) == ALERTS

        await kill_mid_run(fake, env, store, all_delivered)
        assert [k for k, count in fake.delivered.items() if count != 1] == []
        assert sorted(fake.delivered) == [f"a{n:03d}" for n in range(ALERTS)]
        assert fake.history_reads >= 2  # both held sends were looked up, not resent blindly
        assert await store.dead_letters() == []
        assert await store.outbox.pending_count("dispatch") == 0


@pytest.mark.slow
async def test_sigkill_mid_batch_through_webhooks_sends_nothing_twice_and_loses_nothing_silently(
    fake: FakeSlack, tmp_path: Path
) -> None:
    channels = "\n".join(
        f"  - {{id: slack-{n}, type: slack, webhook_url: '{fake.webhook_url}',"
        " uncertain: dead_letter}"
        for n in range(CHANNELS)
    )
    env = environment(tmp_path, channels)
    async with RedisServer.embedded(tmp_path / "data") as client:
        store = Store(client)

        async def all_accounted_for() -> bool:
            orphans = {p["alert"]["id"] for _, p in await store.dead_letters()}
            return len(set(fake.delivered) | orphans) == ALERTS

        await kill_mid_run(fake, env, store, all_accounted_for)
        assert [k for k, count in fake.delivered.items() if count != 1] == []  # none twice
        letters = await store.dead_letters()
        assert all(p["reason"] == ORPHANED for _, p in letters)
        assert 1 <= len(letters) <= CHANNELS  # the held sends, at most one per channel
        orphans = {p["alert"]["id"] for _, p in letters}
        assert sorted(set(fake.delivered) | orphans) == [f"a{n:03d}" for n in range(ALERTS)]
        assert await store.outbox.pending_count("dispatch") == 0
