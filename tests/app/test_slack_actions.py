"""Slack's button presses at ``POST /slack/actions``, on the daemon's real HTTP server and Redis:
signed requests act, forged, stale and replayed ones are refused and logged."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from monitor.app.slack_actions import SlackActions
from monitor.channels.slack_actions import action_block, signature
from monitor.core.health import Health
from monitor.ops.endpoints import Server
from monitor.ops.metrics import Metrics
from monitor.store import Store
from tests.factories import make_alert

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def body_for(*actions: tuple[str, str]) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "desk.editor"},
        "actions": [{"action_id": a, "value": v} for a, v in actions],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(secret, timestamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
async def endpoint(store: Store) -> AsyncIterator[str]:
    async def healthy() -> Health:
        return Health(())

    async def nothing() -> None:
        return None

    server = Server(
        Metrics(),
        healthy,
        nothing,
        port=0,
        actions=SlackActions(lambda: store, lambda: ["an-old-secret", SECRET]),
    )
    await server.start()
    try:
        yield server.url + "/slack/actions"
    finally:
        await server.stop()


async def test_signed_presses_mute_snooze_and_give_feedback(store: Store, endpoint: str) -> None:
    alert = make_alert("a1", story="s-floods", rule="floods")
    await store.add_alerts([{"channel": "desk", "alert": alert.to_dict()}], {}, time.time())
    body = body_for(
        ("newsmonitor_mute", "story:s-floods"),
        ("newsmonitor_snooze", "rule:floods"),
        ("newsmonitor_not_relevant", f"alert:{alert.id}"),
    )
    async with httpx.AsyncClient() as client:
        answer = await client.post(endpoint, content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    quiet = await store.quiet_list(time.time())
    assert {(kind, target) for kind, target, _ in quiet} == {
        ("rule", "floods"),
        ("story", "s-floods"),
    }
    until = {kind: end for kind, _, end in quiet}
    assert 7.9 * 3600 < until["rule"] - time.time() <= 8 * 3600 + 1  # Snooze rule 8h
    assert await store.feedback_counts() == {"floods": {"not-relevant": 1}}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (lambda b: signed(b, secret="not-the-secret"), "forged"),
        (lambda b: signed(b, at=time.time() - 600), "stale"),
        (lambda b: {"Content-Type": "application/x-www-form-urlencoded"}, "unsigned"),
    ],
)
async def test_a_request_that_is_not_slacks_is_refused_and_logged(
    store: Store, endpoint: str, caplog: pytest.LogCaptureFixture, headers: object, why: str
) -> None:
    body = body_for(("newsmonitor_snooze", "rule:floods"))
    caplog.set_level(logging.WARNING, logger="monitor.app.slack_actions")
    async with httpx.AsyncClient() as client:
        answer = await client.post(endpoint, content=body, headers=headers(body))  # type: ignore[operator]
    assert answer.status_code == 401 and answer.text.startswith(why)
    assert f"slack action refused: {why}" in caplog.text
    assert await store.quiet_list(time.time()) == []


async def test_a_replayed_request_is_refused(
    store: Store, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = body_for(("newsmonitor_mute", "story:s1"))
    headers = signed(body)
    async with httpx.AsyncClient() as client:
        first = await client.post(endpoint, content=body, headers=headers)
        await store.clear_quiet("story", "s1")
        again = await client.post(endpoint, content=body, headers=headers)
    assert first.status_code == 200 and again.status_code == 401
    assert "replayed" in caplog.text
    assert await store.quiet_list(time.time()) == []  # the replay did not mute it again


def test_buttons_carry_what_they_act_on() -> None:
    alert = make_alert("a1", story="s-floods", rule="floods")
    block = action_block(alert).to_dict()
    values = {e["action_id"]: e["value"] for e in block["elements"]}
    assert values == {
        "newsmonitor_mute": "story:s-floods",
        "newsmonitor_snooze": "rule:floods",
        "newsmonitor_not_relevant": f"alert:{alert.id}",
    }
