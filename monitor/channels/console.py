"""Alerts on standard output: one human line per alert, or one JSON object per line."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from monitor.models import Alert


def alert_line(alert: Alert) -> str:
    """One line a person can scan: severity, rule, title, source, date, what matched, link."""
    item = alert.item
    when = item.published.strftime("%Y-%m-%d %H:%M") if item.published else "undated"
    terms = ", ".join(dict.fromkeys(m.term for m in alert.matches))
    lead = "  ↳ follow-up" if alert.followup else f"[{alert.severity}]"
    parts = [f"{lead} {alert.rule_name}: {item.title or item.id}", f"({item.source}, {when})"]
    if terms:
        parts.append(f"matched {terms}")
    if item.url or item.path:
        parts.append(item.url or item.path or "")
    return " ".join(parts)


def alert_json(alert: Alert) -> str:
    return json.dumps(alert.to_dict(), ensure_ascii=False, sort_keys=True)


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

    async def close(self) -> None:
        return None
