"""The streams between the roles: consumer groups, and one owner of what their entries hold.

Each entry has one field, ``data``, holding a JSON object. The items stream carries
``{"item": …}`` (``item_entry``); the outbox carries ``{"channel": …, "alert": …}``
(``outbox_entry``) or a released digest, ``{"channel": …, "digest": …}``. Every role encodes and
decodes through the functions here, so the wire format has one home.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from monitor.models import Alert, Item
from monitor.store.commands import is_cluster, translated
from monitor.store.scripts import Scripts

__all__ = [
    "DISPATCH_GROUP",
    "PROCESS_GROUP",
    "AlertRef",
    "Stream",
    "alert_ref",
    "dead_entry",
    "decode",
    "digest_entry",
    "encode",
    "entry_alert",
    "entry_item",
    "fresh_entry",
    "item_entry",
    "outbox_entry",
    "retried_entry",
]

logger = logging.getLogger(__name__)

PROCESS_GROUP: Final = "process"
"""The consumer group of the process role on the items stream."""
DISPATCH_GROUP: Final = "dispatch"
"""The consumer group of the dispatch role on the outbox stream."""


def encode(payload: Mapping[str, Any], *, sort_keys: bool = False) -> str:
    """A payload as the compact JSON an entry's ``data`` field holds; ``sort_keys`` where the
    text itself is an identity (a member of a sorted set: the same retry twice is one)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)


def item_entry(item: Item) -> dict[str, Any]:
    """What the poll role appends to the items stream for ``item``."""
    return {"item": item.to_dict()}


def outbox_entry(channel: str, alert: Alert | Mapping[str, Any]) -> dict[str, Any]:
    """What is appended to the outbox to send ``alert`` (or its dict) on ``channel``."""
    return {"channel": channel, "alert": alert.to_dict() if isinstance(alert, Alert) else alert}


def digest_entry(channel: str, digest: Mapping[str, Any]) -> dict[str, Any]:
    """The outbox entry of a released digest: its bucket, when it was due, its sealed alerts."""
    return {"channel": channel, "digest": dict(digest)}


_DELIVERY_FIELDS = ("reason", "delivery", "failed_at", "attempt", "first_attempt", "last_error")
"""What the dispatcher adds to an outbox entry while it retries it or gives up on it."""


def retried_entry(
    payload: Mapping[str, Any], attempt: int, first: float, error: str
) -> dict[str, Any]:
    """The entry again, for attempt number ``attempt`` of a delivery first tried at ``first``."""
    return {**payload, "attempt": attempt, "first_attempt": first, "last_error": error}


def dead_entry(
    payload: Mapping[str, Any], reason: str, delivery: str, failed_at: float
) -> dict[str, Any]:
    """The dead letter of an outbox entry: the entry, why it failed, and when."""
    return {**payload, "reason": reason, "delivery": delivery, "failed_at": failed_at}


def fresh_entry(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A dead letter (or a retried entry) as a new outbox entry, its delivery history dropped."""
    return {k: v for k, v in payload.items() if k not in _DELIVERY_FIELDS}


def decode(data: str) -> dict[str, Any]:
    """An entry's ``data`` field (or a held alert) back into its payload."""
    payload = json.loads(data)
    if not isinstance(payload, dict):
        raise ValueError("an entry holds a JSON object")
    return payload


def entry_item(payload: Mapping[str, Any]) -> Item:
    """The item of an items-stream entry; KeyError, TypeError or ValueError when malformed."""
    return Item.from_dict(payload["item"])


def entry_alert(payload: Mapping[str, Any]) -> Alert:
    """The alert of an outbox entry; KeyError, TypeError or ValueError when malformed."""
    return Alert.from_dict(payload["alert"])


@dataclass(frozen=True, slots=True)
class AlertRef:
    """What an outbox entry (or dead letter) says of its alert without decoding all of it:
    for logs, metrics and listings; every field None when the entry does not say."""

    channel: str | None
    alert: str | None
    rule: str | None
    story: str | None
    item: str | None
    title: str | None


def alert_ref(payload: Mapping[str, Any]) -> AlertRef:
    """The ids an outbox entry carries, read defensively (it may be malformed)."""
    found = payload.get("alert")
    alert: Mapping[str, Any] = found if isinstance(found, dict) else {}
    inner = alert.get("item")
    item: Mapping[str, Any] = inner if isinstance(inner, dict) else {}
    channel = payload.get("channel")
    return AlertRef(
        channel=None if channel is None else str(channel),
        alert=alert.get("id"),
        rule=alert.get("rule"),
        story=alert.get("story"),
        item=item.get("id"),
        title=item.get("title"),
    )


def _payloads(
    entries: list[Any],
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Decode stream entries into ``(id, payload)``; also return the ids that are not ours.

    Entries Redis reports as deleted (``(None, None)``, Redis 6.2's XAUTOCLAIM) are dropped.
    """
    good: list[tuple[str, dict[str, Any]]] = []
    bad: list[str] = []
    for entry_id, fields in entries:
        if entry_id is None:
            continue
        try:
            payload = decode(fields["data"]) if fields else None
        except (KeyError, TypeError, ValueError):
            payload = None
        if isinstance(payload, dict):
            good.append((entry_id, payload))
        else:
            bad.append(entry_id)
    return good, bad


def _read_entries(response: Any) -> list[Any]:
    """The entries of an XREADGROUP reply for one stream, whichever reply shape redis-py gives."""
    if not response:
        return []
    if isinstance(response, dict):
        return [entry for entries in response.values() for entry in entries]
    return [entry for _stream, entries in response for entry in entries]


# ``trim(key)`` trims the stream ``key`` of the entries every consumer group is done with: those
# before the oldest entry still pending in some group, or, in a group with nothing pending, up
# to the last one it was given. Entries no group has read yet stay. Returns how many went.
TRIM_FUNCTION = """
local function trim(key)
  if redis.call('EXISTS', key) == 0 then return 0 end
  local groups = redis.call('XINFO', 'GROUPS', key)
  if #groups == 0 then return 0 end
  local function parts(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  local keep_ms, keep_seq = nil, nil
  for _, group in ipairs(groups) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    local ms, seq = parts(info['last-delivered-id'])
    seq = seq + 1  -- the last entry given to the group is done with too
    if tonumber(info['pending']) > 0 then
      ms, seq = parts(redis.call('XPENDING', key, info['name'])[2])
    end
    if keep_ms == nil or ms < keep_ms or (ms == keep_ms and seq < keep_seq) then
      keep_ms, keep_seq = ms, seq
    end
  end
  return redis.call('XTRIM', key, 'MINID', string.format('%d-%d', keep_ms, keep_seq))
end
"""

# Trims the stream KEYS[1] (``trim``).
TRIM_ACKED = TRIM_FUNCTION + "return trim(KEYS[1])\n"


class Stream:
    """One Redis stream, read through consumer groups; payloads are JSON objects.

    Each entry has one field, ``data``, holding the JSON. Entries are acknowledged only after
    they were handled, so an entry whose consumer died is handed to another one by
    ``autoclaim``; once every group has acknowledged an entry it is trimmed (``ack``). Appends
    also trim approximately to ``maxlen``, so a group that stopped reading cannot make the
    stream grow without bound.
    """

    def __init__(self, client: Redis, key: str, maxlen: int) -> None:
        self._client = client
        self.key = key
        self.maxlen = maxlen
        self._scripts = Scripts(client, trim=TRIM_ACKED)

    def __repr__(self) -> str:
        return f"Stream({self.key!r}, maxlen={self.maxlen})"

    async def ensure_group(self, group: str, start: str = "0") -> None:
        """Create ``group`` (and the stream) unless it exists.

        ``start="0"`` makes a new group read what was appended before it existed, so items
        polled before the first process role started are still processed.
        """
        with translated(f"XGROUP CREATE {self.key} {group}"):
            try:
                await self._client.xgroup_create(self.key, group, id=start, mkstream=True)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise
            await self._scripts.load()  # the trim that follows acknowledgements

    async def add_many(self, payloads: list[dict[str, Any]]) -> list[str]:
        """Append ``payloads`` in one pipeline (one round trip); return their entry ids."""
        if not payloads:
            return []
        with translated(f"XADD {self.key}"):
            async with self._client.pipeline(transaction=False) as pipe:
                self.queue(pipe, payloads)
                ids: list[str] = await pipe.execute()
        return ids

    def queue(self, pipe: Pipeline, payloads: Sequence[dict[str, Any]]) -> None:
        """Add the ``XADD`` of each payload to ``pipe`` (so one round trip can do more)."""
        for payload in payloads:
            pipe.xadd(self.key, {"data": encode(payload)}, maxlen=self.maxlen, approximate=True)

    async def read(
        self, group: str, consumer: str, count: int, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` entries never delivered to ``group`` before, now pending on ``consumer``.

        ``block_ms=None`` returns at once; otherwise waits up to that long for an entry (0: for
        ever). Entries that are not ours (no JSON object in ``data``) are acknowledged and logged
        so they cannot come back for ever.
        """

        async def xreadgroup() -> Any:
            return await self._xreadgroup(group, consumer, ">", count, block_ms)

        with translated(f"XREADGROUP {self.key} {group}"):
            response = await self._regrouped(group, xreadgroup)
        return await self._keep_ours(group, _read_entries(response))

    async def _xreadgroup(
        self, group: str, consumer: str, start: str, count: int, block_ms: int | None = None
    ) -> Any:
        """``XREADGROUP`` of this stream from ``start``. On a cluster it is sent to the node of
        the stream's slot: left to find the slot itself, the client would first ask a node
        ``COMMAND GETKEYS`` (two more round trips a read)."""
        if not is_cluster(self._client):
            return await self._client.xreadgroup(
                group, consumer, {self.key: start}, count=count, block=block_ms
            )
        pieces: list[Any] = ["GROUP", group, consumer, "COUNT", count]
        if block_ms is not None:
            pieces += ["BLOCK", block_ms]
        node = self._client.get_node_from_key(self.key)  # type: ignore[attr-defined]
        return await self._client.execute_command(  # type: ignore[no-untyped-call]
            "XREADGROUP", *pieces, "STREAMS", self.key, start, target_nodes=node
        )

    async def _regrouped(self, group: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``command``; if Redis lost the group (it restarted without persistence, or the
        stream was deleted), create it again and retry once, so the role goes on by itself."""
        try:
            return await command()
        except ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
        logger.warning("consumer group %s of %s was gone: created it again", group, self.key)
        await self.ensure_group(group)
        return await command()

    async def ack(self, group: str, ids: list[str]) -> int:
        """Acknowledge handled entries: they leave the group's pending list, and the stream
        drops what every group is done with, in the same round trip. Returns how many entries
        were acknowledged."""
        if not ids:
            return 0
        with translated(f"XACK {self.key} {group}"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xack(self.key, group, *ids)
                self.queue_trim(pipe)
                replies = await self.execute(pipe)
        return int(replies[0])

    def queue_trim(self, pipe: Pipeline) -> None:
        """Add to ``pipe`` the trim of what every group is done with (after its ``XACK``)."""
        self._scripts.call(pipe, "trim", [self.key], [])

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """Run a pipeline holding ``queue_trim`` (the script is loaded again if Redis lost it)."""
        return await self._scripts.execute(pipe)

    async def autoclaim(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Take over up to ``count`` entries pending for at least ``min_idle_ms`` on any consumer.

        This is how the work of a consumer that died is redelivered: it read entries, never
        acknowledged them, and after ``min_idle_ms`` another consumer claims them.
        """

        async def xautoclaim() -> Any:
            return await self._client.xautoclaim(
                self.key, group, consumer, min_idle_ms, start_id="0-0", count=count
            )

        with translated(f"XAUTOCLAIM {self.key} {group}"):
            response = await self._regrouped(group, xautoclaim)
        return await self._keep_ours(group, list(response[1]))

    async def own_pending(
        self, group: str, consumer: str, count: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Entries already delivered to ``consumer`` and not acknowledged: what a process that
        restarted under the same name left unfinished."""

        async def xreadgroup() -> Any:
            return await self._xreadgroup(group, consumer, "0", count)

        with translated(f"XREADGROUP {self.key} {group} 0"):
            response = await self._regrouped(group, xreadgroup)
        return await self._keep_ours(group, _read_entries(response))

    async def claim_from_dead(
        self,
        group: str,
        consumer: str,
        alive: Callable[[list[str]], Awaitable[list[bool]]],
        count: int,
        min_idle_ms: int = 1000,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Take over up to ``count`` entries pending on consumers whose heartbeat stopped
        (``alive`` says which of the named consumers still beat); a dead consumer left with
        nothing pending is removed from the group. ``min_idle_ms`` keeps an entry a consumer
        read a moment ago with its last breath from being taken twice at once."""
        with translated(f"XPENDING {self.key} {group}"):
            summary = await self._client.xpending(self.key, group)
        others = [
            str(c["name"]) for c in summary.get("consumers") or () if str(c["name"]) != consumer
        ]
        if not others:
            return []
        dead = [name for name, beats in zip(others, await alive(others), strict=True) if not beats]
        taken: list[Any] = []
        for name in dead:
            wanted = count - len(taken)
            with translated(f"XPENDING {self.key} {group} {name}"):
                pending = await self._client.xpending_range(
                    self.key, group, min="-", max="+", count=wanted, consumername=name
                )
                ids: list[Any] = [p["message_id"] for p in pending]
                claimed = (
                    await self._client.xclaim(self.key, group, consumer, min_idle_ms, ids)
                    if ids
                    else []
                )
                taken.extend(claimed)
                if len(ids) < wanted and len(claimed) == len(ids):
                    # Its last entries are ours now: the dead consumer leaves the group.
                    await self._client.xgroup_delconsumer(self.key, group, name)
            if len(taken) >= count:
                break
        if taken:
            logger.warning(
                "took over %d entries of %s from consumers that stopped: %s",
                len(taken),
                self.key,
                ", ".join(dead),
            )
        return await self._keep_ours(group, [e for e in taken if e and e[1] is not None])

    async def pending_count(self, group: str) -> int:
        """Entries delivered to ``group`` and not acknowledged yet."""
        with translated(f"XPENDING {self.key} {group}"):
            summary = await self._client.xpending(self.key, group)
        return int(summary["pending"])

    async def length(self) -> int:
        """Entries in the stream (acknowledged or not; trimming bounds it)."""
        with translated(f"XLEN {self.key}"):
            length: int = await self._client.xlen(self.key)
        return length

    async def _keep_ours(self, group: str, entries: list[Any]) -> list[tuple[str, dict[str, Any]]]:
        good, bad = _payloads(entries)
        if bad:
            logger.error("dropping %d foreign entries from %s: %s", len(bad), self.key, bad)
            await self.ack(group, bad)
        return good


TAKE_OVER_EVERY_S = 2.0  # how often a consumer looks for work left pending


class TakeOver:
    """What a consumer whose process keeps a heartbeat takes on before new entries, every
    ``every_s`` at most: the entries still pending on its own name (left by a predecessor of
    that name, or not finished yet), else those of consumers whose heartbeat stopped."""

    def __init__(
        self,
        stream: Stream,
        group: str,
        alive: Callable[[list[str]], Awaitable[list[bool]]],
        every_s: float = TAKE_OVER_EVERY_S,
    ) -> None:
        self.stream = stream
        self.group = group
        self.alive = alive
        self.every_s = every_s
        self._last = float("-inf")

    async def __call__(self, consumer: str, count: int) -> list[tuple[str, dict[str, Any]]]:
        if time.monotonic() - self._last < self.every_s:
            return []
        self._last = time.monotonic()
        if own := await self.stream.own_pending(self.group, consumer, count):
            return own
        return await self.stream.claim_from_dead(self.group, consumer, self.alive, count)
