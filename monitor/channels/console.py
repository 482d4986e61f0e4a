"""Alerts on standard output: one human line per alert, or one JSON object per line."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from monitor.channels.times import shown
from monitor.models import Alert, Digest


def alert_line(alert: Alert) -> str:
    """One line a person can scan: severity, rule, title, source, date, what matched, link."""
    item = alert.item
    when = shown(item.published) if item.published else "undated"
    terms = ", ".join(dict.fromkeys(m.term for m in alert.matches))
    lead = "  ↳ follow-up" if alert.followup else f"[{alert.severity}]"
    parts = [f"{lead} {alert.rule_name}: {item.title or item.id}", f"({item.source}, {when})"]
    if terms:
        parts.append(f"matched {terms}")
    if item.url or item.path:
        parts.append(item.url or item.path or "")
    if alert.related:
        parts.append(f"(may belong to story {alert.related}: {alert.related_title or '?'})")
    return " ".join(parts)


def alert_json(alert: Alert) -> str:
    return json.dumps(alert.to_dict(), ensure_ascii=False, sort_keys=True)


def digest_lines(digest: Digest) -> list[str]:
    """A heading, then each story's alerts, indented under it."""
    lines = [f"[digest] {digest.summary()}"]
    for _, alerts in digest.stories():
        lines.extend(f"  {alert_line(alert)}" for alert in alerts)
    return lines


def digest_json(digest: Digest) -> str:
    return json.dumps(
        {
            "digest": digest.id,
            "channel": digest.channel,
            "due": digest.due.isoformat(),
            "schedule": digest.schedule,
            "stories": [
                {"story": story, "alerts": [a.to_dict() for a in alerts]}
                for story, alerts in digest.stories()
            ],
        },
        ensure_ascii=False,
        sort_keys=True,
    )


class ConsoleChannel:
    """Prints each alert; never fails, so it never needs a retry."""

    def __init__(self, id: str, *, json_lines: bool = False, stream: TextIO | None = None) -> None:
        self._id = id
        self.json_lines = json_lines
        self.stream = stream

    @property
    def id(self) -> str:
        return self._id

    async def send(self, alert: Alert) -> None:
        out = self.stream or sys.stdout
        out.write((alert_json(alert) if self.json_lines else alert_line(alert)) + "\n")
        out.flush()

    async def send_digest(self, digest: Digest) -> None:
        out = self.stream or sys.stdout
        text = digest_json(digest) if self.json_lines else "\n".join(digest_lines(digest))
        out.write(text + "\n")
        out.flush()

    async def close(self) -> None:
        return None
