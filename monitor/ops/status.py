"""``monitor status``, pure: the status object and its renderings from one Redis snapshot.

Sources with their health, the rules loaded, alerts in the last hour and day by rule, and the
queues (items, outbox, delayed retries, dead letters). Redis is read in one round trip
(``monitor/store/snapshot.py``); ``summarize`` turns that snapshot into the status object
(``--json`` prints it), and ``plain_lines`` and ``tables`` render it. ``now`` is an argument
and nothing is read but what they are given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from monitor.core.config import FeedSourceSpec, ReplaySourceSpec, WireSourceSpec
from monitor.core.polling import FeedHealth, due_time, poll_spec
from monitor.core.rules import WatchConfig
from monitor.ops.redaction import redact
from monitor.store.commands import as_int
from monitor.store.keys import ALERT_BUCKET_S, alert_bucket
from monitor.store.snapshot import Snapshot

__all__ = ["WINDOWS", "SourceRow", "alert_rows", "plain_lines", "source_row", "summarize", "tables"]

SourceSpec = ReplaySourceSpec | FeedSourceSpec | WireSourceSpec
HOUR_S = 3600
DAY_S = 86400
WINDOWS = {"last_hour": HOUR_S, "last_day": DAY_S}
"""Alert counts are summed over the buckets of these windows (the current bucket included)."""


# --------------------------------------------------------------------------- pure: summary


def summarize(
    snapshot: Snapshot,
    config: WatchConfig | None,
    *,
    rules_dir: str,
    problems: Sequence[str] = (),
    redis: str = "",
) -> dict[str, Any]:
    """The status object: what ``monitor status --json`` prints (secrets masked)."""
    now = datetime.fromtimestamp(snapshot.now, UTC)
    rules = sorted(rule.id for rule in config.rules) if config is not None else []
    return {
        "at": _iso(now),
        "redis": redact(redis),
        "rules": {"dir": rules_dir, "count": len(rules), "ids": rules, "problems": list(problems)},
        "sources": [
            source_row(spec, snapshot.health.get(spec.id, {}), now)
            for spec in (config.sources if config is not None else ())
        ],
        "alerts": alert_rows(snapshot.buckets, rules, snapshot.now),
        "queues": {
            "items": snapshot.items.to_dict(),
            "outbox": snapshot.outbox.to_dict(),
            "delayed": snapshot.delayed,
            "dead": snapshot.dead,
            "held": snapshot.held,
        },
        "problems": list(snapshot.problems),
    }


class SourceRow(TypedDict):
    """One source in ``monitor status`` and ``monitor sources list``."""

    id: str
    type: str
    where: str
    enabled: bool
    health: str
    last_poll: str | None
    last_success: str | None
    last_error: str | None
    error: str | None
    consecutive_failures: int
    last_new_item: str | None
    items_per_day: float
    next_due: str | None
    overdue: bool


def source_row(spec: SourceSpec, stored: Mapping[str, str], now: datetime) -> SourceRow:
    """One source: where it reads, its health verdict, and the facts behind it."""
    health = FeedHealth.from_mapping(stored)
    bounds = poll_spec(spec)
    due = due_time(health, bounds)
    overdue = bool(due and due < now - timedelta(seconds=bounds.max))
    if not spec.enabled:
        verdict = "disabled"
    elif health.last_poll is None:
        verdict = "never polled"
    elif health.consecutive_failures:
        verdict = "failing"
    elif overdue:
        verdict = "overdue"
    else:
        verdict = "ok"
    return {
        "id": spec.id,
        "type": spec.type,
        "where": redact(str(getattr(spec, "url", None) or getattr(spec, "path", ""))),
        "enabled": spec.enabled,
        "health": verdict,
        "last_poll": _iso(health.last_poll),
        "last_success": _iso(health.last_success),
        "last_error": _iso(health.last_error),
        "error": redact(health.error) if health.consecutive_failures and health.error else None,
        "consecutive_failures": health.consecutive_failures,
        "last_new_item": _iso(health.last_new_item),
        "items_per_day": round(health.items_per_day, 1),
        "next_due": _iso(due),
        "overdue": overdue,
    }


def alert_rows(
    buckets: Mapping[int, Mapping[str, str]], rules: Sequence[str], now: float
) -> dict[str, Any]:
    """Alerts and follow-ups per rule over each window, configured rules first even at zero;
    rules no longer configured still show while their counts last."""
    newest = alert_bucket(now)
    totals: dict[str, dict[str, int]] = {rule: {} for rule in rules}
    for window, seconds in WINDOWS.items():
        oldest = newest - math.ceil(seconds / ALERT_BUCKET_S) + 1
        for bucket, counts in buckets.items():
            if not oldest <= bucket <= newest:
                continue
            for name, value in counts.items():
                kind, _, rule = name.partition(":")
                if kind not in ("alert", "followup") or not rule:
                    continue
                column = window if kind == "alert" else f"followups_{window}"
                row = totals.setdefault(rule, {})
                row[column] = row.get(column, 0) + as_int(value)
    columns = [*WINDOWS, *(f"followups_{window}" for window in WINDOWS)]
    configured = set(rules)
    rows: list[dict[str, Any]] = [
        {
            "rule": rule,
            **{column: counts.get(column, 0) for column in columns},
            "configured": rule in configured,
        }
        for rule, counts in totals.items()
    ]
    rows.sort(key=lambda r: (not r["configured"], -r["last_day"], -r["last_hour"], r["rule"]))
    return {
        "bucket_s": ALERT_BUCKET_S,
        **{column: sum(row[column] for row in rows) for column in columns},
        "rules": rows,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


# --------------------------------------------------------------------------- pure: rendering


def _when(value: str | None) -> str:
    return value.replace("T", " ").removesuffix("+00:00") if value else "-"


def _source_state(row: Mapping[str, Any]) -> str:
    if row["health"] == "failing":
        return f"FAILING x{row['consecutive_failures']}: {row['error']}"
    if row["health"] == "ok":
        return f"ok at {_when(row['last_success'])}"
    if row["health"] == "overdue":
        return f"OVERDUE since {_when(row['next_due'])}"
    return str(row["health"])


def plain_lines(status: Mapping[str, Any]) -> list[str]:
    """The status as plain lines, for a pipe or a log (no colours, no tables)."""
    rules = status["rules"]
    lines = [f"newsmonitor status at {_when(status['at'])} UTC, redis {status['redis']}"]
    if rules["problems"]:
        lines.append(f"rules in {rules['dir']}: INVALID, {len(rules['problems'])} problems")
        lines.extend(f"  {problem}" for problem in rules["problems"])
    else:
        lines.append(f"rules in {rules['dir']}: {rules['count']} loaded: {', '.join(rules['ids'])}")
    lines.append(f"sources: {len(status['sources'])}")
    for row in status["sources"]:
        lines.append(
            f"  {row['id']} ({row['type']}, {row['where']}): {_source_state(row)}; "
            f"last new item {_when(row['last_new_item'])}; {row['items_per_day']} items/day; "
            f"next due {_when(row['next_due']) if row['next_due'] else 'now'}"
        )
    alerts = status["alerts"]
    lines.append(
        f"alerts: {alerts['last_hour']} in the last hour, {alerts['last_day']} in the last day "
        f"(follow-ups: {alerts['followups_last_hour']}, {alerts['followups_last_day']})"
    )
    for row in alerts["rules"]:
        gone = "" if row["configured"] else " (no longer configured)"
        lines.append(
            f"  {row['rule']}{gone}: {row['last_hour']} / {row['last_day']}, "
            f"follow-ups {row['followups_last_hour']} / {row['followups_last_day']}"
        )
    queues = status["queues"]
    lines.append(
        f"queues: items {_queue_text(queues['items'])}; outbox {_queue_text(queues['outbox'])}; "
        f"delayed retries {queues['delayed']}; dead letters {queues['dead']}; "
        f"digests waiting {queues['held']}"
    )
    if status["problems"]:
        lines.append(f"operator alerts out: {', '.join(status['problems'])}")
    return lines + desk_lines(status)


def desk_lines(status: Mapping[str, Any]) -> list[str]:
    """What the desk silenced, and its feedback per rule."""
    lines = [
        f"{'muted' if row['kind'] == 'story' else 'snoozed'}: {row['kind']} {row['id']} "
        f"until {row['until']}"
        for row in status.get("quiet", ())
    ]
    for rule, kinds in sorted(status.get("feedback", {}).items()):
        counts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        lines.append(f"feedback on {rule}: {counts}")
    return lines


def _queue_text(queue: Mapping[str, Any]) -> str:
    unread = "" if queue["lag"] is None else f", {queue['lag']} unread"
    return f"{queue['length']} entries, {queue['pending']} pending{unread}"


_HEALTH_STYLE = {
    "ok": "green",
    "failing": "bold red",
    "overdue": "yellow",
    "never polled": "dim",
    "disabled": "dim",
}


def tables(status: Mapping[str, Any]) -> RenderableType:
    """The status as rich tables, for a terminal."""
    rules = status["rules"]
    head = Text.assemble(
        ("newsmonitor status", "bold"), f" at {_when(status['at'])} UTC, redis {status['redis']}"
    )
    if rules["problems"]:
        rules_line = Text(
            f"rules in {rules['dir']}: INVALID\n"
            + "\n".join(f"  {problem}" for problem in rules["problems"]),
            style="red",
        )
    else:
        rules_line = Text(f"rules in {rules['dir']}: {rules['count']} loaded")

    sources = Table(title="Sources", title_justify="left", expand=False)
    for column in ("source", "type", "health", "last success", "last new item", "items/day"):
        sources.add_column(column, justify="right" if column == "items/day" else "left")
    sources.add_column("next due")
    for row in status["sources"]:
        verdict = _source_state(row) if row["health"] == "failing" else row["health"]
        sources.add_row(
            row["id"],
            row["type"],
            Text(verdict, style=_HEALTH_STYLE.get(row["health"], "")),
            _when(row["last_success"]),
            _when(row["last_new_item"]),
            f"{row['items_per_day']}",
            _when(row["next_due"]) if row["next_due"] else "now",
        )

    alerts = status["alerts"]
    by_rule = Table(title="Alerts by rule (follow-ups)", title_justify="left")
    by_rule.add_column("rule")
    by_rule.add_column("last hour", justify="right")
    by_rule.add_column("last day", justify="right")
    for row in alerts["rules"]:
        by_rule.add_row(
            Text(row["rule"], style="" if row["configured"] else "dim"),
            f"{row['last_hour']} ({row['followups_last_hour']})",
            f"{row['last_day']} ({row['followups_last_day']})",
        )
    by_rule.add_section()
    by_rule.add_row(
        Text("all", style="bold"),
        f"{alerts['last_hour']} ({alerts['followups_last_hour']})",
        f"{alerts['last_day']} ({alerts['followups_last_day']})",
    )

    queues = status["queues"]
    queue_table = Table(title="Queues", title_justify="left")
    for column in ("queue", "entries", "pending", "unread", "consumers"):
        queue_table.add_column(column, justify="left" if column == "queue" else "right")
    for name in ("items", "outbox"):
        queue = queues[name]
        queue_table.add_row(
            name,
            str(queue["length"]),
            str(queue["pending"]),
            "-" if queue["lag"] is None else str(queue["lag"]),
            str(queue["consumers"]),
        )
    queue_table.add_row("delayed retries", str(queues["delayed"]), "", "", "")
    queue_table.add_row("digests waiting", str(queues["held"]), "", "", "")
    dead_style = "bold red" if queues["dead"] else ""
    queue_table.add_row(Text("dead letters", style=dead_style), str(queues["dead"]), "", "", "")
    desk = [Text(line) for line in desk_lines(status)]
    if not status["problems"]:
        return Group(head, rules_line, sources, by_rule, queue_table, *desk)
    problems = Text(f"operator alerts out: {', '.join(status['problems'])}", style="bold red")
    return Group(head, rules_line, sources, by_rule, queue_table, problems, *desk)
