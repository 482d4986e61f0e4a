"""``monitor alerts``: the dead letters, and sending them again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server
from monitor.store import Store
from monitor.store.streams import alert_ref, fresh_entry

__all__ = ["DeadLetterRow", "dead_letters", "retry_dead", "retry_dead_letters"]


class DeadLetterRow(TypedDict):
    """One dead letter: what was not delivered, where, and why."""

    id: str
    channel: str | None
    rule: str | None
    title: str | None
    reason: Any
    failed_at: str | None  # ISO 8601 with offset


def _iso(epoch: Any) -> str | None:
    try:
        return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


async def dead_letters(settings: Settings) -> list[DeadLetterRow]:
    """The dead-letter stream, oldest first."""
    async with redis_server(settings) as client:
        letters = await open_store(client, settings).dead_letters()
    rows: list[DeadLetterRow] = []
    for entry_id, payload in letters:
        ref = alert_ref(payload)
        rows.append(
            {
                "id": entry_id,
                "channel": ref.channel,
                "rule": ref.rule,
                "title": ref.title,
                "reason": payload.get("reason"),
                "failed_at": _iso(payload.get("failed_at")),
            }
        )
    return rows


async def retry_dead(store: Store, ids: Sequence[str] | None) -> int:
    """Put dead letters (all, or those with these stream ids) back in the outbox, fresh.
    ``LookupError`` naming the ids that are not dead letters, and nothing is retried."""
    letters = await store.dead_letters()
    if ids is not None and (unknown := sorted(set(ids) - {i for i, _ in letters})):
        raise LookupError(f"no dead letter {', '.join(unknown)} (see `monitor alerts dead`)")
    chosen = [(i, p) for i, p in letters if ids is None or i in ids]
    await store.outbox.add_many([fresh_entry(p) for _, p in chosen])
    await store.remove_dead([i for i, _ in chosen])
    return len(chosen)


async def retry_dead_letters(settings: Settings, ids: Sequence[str] | None) -> int:
    """Send dead letters again (all when ``ids`` is None): back into the outbox, fresh."""
    async with redis_server(settings) as client:
        return await retry_dead(open_store(client, settings), ids)
