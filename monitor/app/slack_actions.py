"""``POST /slack/actions``: the buttons of Slack alerts, pressed.

A request is taken only when it is Slack's (``channels.slack_actions.verify``: signed with the
signing secret of a configured Slack channel, within five minutes) and new: its signature is
remembered in Redis for ten minutes, so a captured request replayed within the window is
refused too. Every refusal is logged with its reason. Mute story and Snooze rule act as
``monitor mute story`` and ``monitor snooze rule`` do (24 hours, 8 hours); Not relevant records
feedback on the alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from monitor.channels.slack_actions import MUTE_S, SNOOZE_S, WINDOW_S, presses, verify
from monitor.clock import Clock
from monitor.core.config import SlackChannelSpec
from monitor.core.rules import WatchConfig
from monitor.errors import StoreError
from monitor.store import Store

__all__ = ["SlackActions", "signing_secrets"]

logger = logging.getLogger(__name__)


def signing_secrets(config: WatchConfig) -> list[str]:
    """The signing secrets of the configured Slack channels."""
    return [
        spec.signing_secret.get_secret_value()
        for spec in config.channels
        if isinstance(spec, SlackChannelSpec) and spec.signing_secret is not None
    ]


class SlackActions:
    """Answers ``/slack/actions``: ``(status, text)`` for a request's body and headers."""

    def __init__(
        self,
        store: Callable[[], Store | None],
        secrets: Callable[[], list[str]],
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.clock = clock

    async def __call__(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        now = self.clock()
        given = headers.get("X-Slack-Signature")
        why = verify(body, headers.get("X-Slack-Request-Timestamp"), given, self.secrets(), now)
        if why is not None:
            logger.warning("slack action refused: %s", why)
            return 401, why
        store = self.store()
        if store is None:
            return 503, "not connected to Redis yet"
        try:
            [fresh] = await store.set_once(
                [(store.keys.slack_request(str(given)), "1", 2 * WINDOW_S)]
            )
        except StoreError as exc:
            logger.error("slack action not taken: %s", exc)
            return 503, "Redis is unavailable"
        if not fresh:
            logger.warning("slack action refused: replayed (this signature was used before)")
            return 401, "replayed"
        try:
            pressed = presses(body)
        except ValueError as exc:
            logger.warning("slack action refused: %s", exc)
            return 400, str(exc)
        done = []
        for press in pressed:
            try:
                if press.action == "mute":
                    await store.set_quiet("story", press.target, now + MUTE_S, now)
                elif press.action == "snooze":
                    await store.set_quiet("rule", press.target, now + SNOOZE_S, now)
                else:
                    note = f"from Slack, by {press.user}" if press.user else "from Slack"
                    await store.add_feedback(press.target, press.action, note, now)
            except LookupError as exc:
                logger.warning("slack action on %s: %s", press.target, exc)
                continue
            except StoreError as exc:
                logger.error("slack action not taken: %s", exc)
                return 503, "Redis is unavailable"
            logger.info(
                "slack action: %s %s %s",
                press.action,
                press.kind,
                press.target,
            )
            done.append(f"{press.action} {press.kind} {press.target}")
        return 200, "; ".join(done) or "nothing to do"
