"""Buttons on Slack alerts (Mute story, Snooze rule 8h, Not relevant) and the requests Slack
sends when one is pressed, verified as Slack documents: the ``v0`` HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the app's signing secret, compared in constant time, and a
timestamp within five minutes of now. (The daemon also refuses a signature it has seen before:
``app.slack_actions``.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.models.blocks import ActionsBlock, ButtonElement

from monitor.models import Alert

WINDOW_S = 300  # Slack's own: a request older (or newer) than this is refused
SNOOZE_S = 8 * 3600
MUTE_S = 24 * 3600
ACTIONS = {
    "newsmonitor_mute": "mute",
    "newsmonitor_snooze": "snooze",
    "newsmonitor_not_relevant": "not-relevant",
}


def action_block(alert: Alert) -> ActionsBlock:
    """The buttons under an alert (a message from a bot token whose app has a signing
    secret, so their presses can be verified)."""
    return ActionsBlock(
        block_id="actions",
        elements=[
            ButtonElement(
                text="Mute story", action_id="newsmonitor_mute", value=f"story:{alert.story}"
            ),
            ButtonElement(
                text="Snooze rule 8h", action_id="newsmonitor_snooze", value=f"rule:{alert.rule}"
            ),
            ButtonElement(
                text="Not relevant",
                action_id="newsmonitor_not_relevant",
                value=f"alert:{alert.id}",
                style="danger",
            ),
        ],
    )


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``X-Slack-Signature`` of a request."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    body: bytes, timestamp: str | None, given: str | None, secrets: Iterable[str], now: float
) -> str | None:
    """None when the request is Slack's (signed with one of ``secrets``, fresh); else why not."""
    if not timestamp or not given:
        return "unsigned: X-Slack-Request-Timestamp or X-Slack-Signature missing"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"bad timestamp {timestamp[:40]!r}"
    if abs(now - sent) > WINDOW_S:
        return f"stale: signed {now - sent:.0f} s from now (more than {WINDOW_S} s)"
    for secret in secrets:
        if hmac.compare_digest(signature(secret, timestamp, body), given):
            return None
    return "forged: the signature matches no signing secret"


@dataclass(frozen=True, slots=True)
class Press:
    """One pressed button: what to do, to what, by whom."""

    action: str  # mute | snooze | not-relevant
    kind: str  # story | rule | alert
    target: str
    user: str


def presses(body: bytes) -> list[Press]:
    """The buttons pressed in an interaction request (``payload=<json>``, form encoded);
    ValueError for anything else."""
    form = parse_qs(body.decode("utf-8", "replace"))
    raw = (form.get("payload") or [""])[0]
    try:
        payload: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not an interaction payload: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("not an interaction payload")
    user = str(
        (payload.get("user") or {}).get("username") or (payload.get("user") or {}).get("id") or ""
    )
    found = []
    for action in payload.get("actions") or ():
        name = ACTIONS.get(str(action.get("action_id")))
        kind, _, target = str(action.get("value") or "").partition(":")
        if name and kind in ("story", "rule", "alert") and target:
            found.append(Press(name, kind, target, user))
    return found
