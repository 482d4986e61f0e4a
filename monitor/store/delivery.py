"""The send ledger and everything the dispatch role keeps: in-flight locks, sent marks, held
alerts (digests, quiet hours), delayed retries, dead letters, thread references, alert counts.

Every command is a single-key command or a non-transactional pipeline, except the script that
releases a digest (``release_holds``), which must move a bucket and queue its entry at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from monitor.errors import StoreError
from monitor.store.commands import as_float, translated
from monitor.store.keys import ALERT_COUNTS_TTL_S, Keys, alert_bucket
from monitor.store.streams import Stream, decode, encode

__all__ = [
    "ALIVE_TTL_S",
    "INFLIGHT_TTL_S",
    "RELEASE_HOLD",
    "UNSURE",
    "Deliveries",
    "SendState",
    "alert_record",
]

logger = logging.getLogger(__name__)

ALIVE_TTL_S: Final = 120  # longer than any channel's send timeout


INFLIGHT_TTL_S: Final = 86400


UNSURE: Final = "unsure"
"""The sender named in the in-flight lock of a send that timed out: never alive."""

RELEASE_HOLD: Final = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
    return 0
end
redis.call('RENAME', KEYS[2], KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'data', ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class SendState:
    """What ``Store.begin_send`` found: go, sent, busy or orphaned (and since when)."""

    state: str
    since: float | None = None


class Deliveries:
    """The dispatch role's state: exactly-once sends, holds, retries, dead letters, threads."""

    client: Redis
    keys: Keys
    seen_ttl: int
    outbox: Stream
    _release_hold: AsyncScript

    async def beat(self, owners: Sequence[str], ttl_s: float) -> None:
        """Say these consumers (and dispatchers) are alive for ``ttl_s`` more seconds: what
        their pending entries and in-flight sends are left to, until it lapses."""
        with translated("heartbeat"):
            async with self.client.pipeline(transaction=False) as pipe:
                for owner in owners:
                    pipe.set(self.keys.alive(owner), "1", px=max(int(ttl_s * 1000), 1))
                await pipe.execute()

    async def keep_alive(self, owners: Sequence[str], ttl_s: float, every_s: float) -> None:
        """``beat`` every ``every_s`` until cancelled (a daemon's, a process worker's): when it
        stops, other processes take over the owners' pending entries and settle their sends in
        flight. Redis trouble is logged and the next beat tries again."""
        while True:
            try:
                await self.beat(owners, ttl_s)
            except StoreError as exc:
                logger.warning("heartbeat not written: %s", exc)
            await asyncio.sleep(every_s)

    async def alive_many(self, owners: list[str]) -> list[bool]:
        """Whether each named consumer's heartbeat is current."""
        with translated("EXISTS alive"):
            async with self.client.pipeline(transaction=False) as pipe:
                for owner in owners:
                    pipe.exists(self.keys.alive(owner))
                return [bool(found) for found in await pipe.execute()]

    async def begin_send(
        self, delivery: str, owner: str, alive_s: float = ALIVE_TTL_S, now: float | None = None
    ) -> SendState:
        """Just before sending. ``"sent"``: a channel already took it. ``"busy"``: another
        running dispatcher is sending it. ``"orphaned"``: a dispatcher died while sending it
        (since ``SendState.since``), so it may have arrived. ``"go"``: it is ours until
        ``finish_send`` or ``end_send``. Each call also says ``owner`` is alive for
        ``alive_s``: longer than any send lasts."""
        mark = f"{owner}@{time.time() if now is None else now:.3f}"
        with translated("begin send"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.alive(owner), "1", px=max(int(alive_s * 1000), 1))
                pipe.exists(self.keys.sent(delivery))
                pipe.set(self.keys.inflight(delivery), mark, nx=True, ex=INFLIGHT_TTL_S)
                pipe.get(self.keys.inflight(delivery))
                _, sent, taken, holder = await pipe.execute()
            if sent:
                return SendState("sent")
            if taken:
                return SendState("go")
            holder_owner, _, since = str(holder).rpartition("@")
            if holder_owner == owner:  # left by this dispatcher: a send whose end was lost
                return SendState("orphaned", as_float(since))
            alive = await self.client.exists(self.keys.alive(holder_owner))
        return SendState("busy" if alive else "orphaned", as_float(since))

    async def recovering(self, delivery: str, owner: str, alive_s: float = ALIVE_TTL_S) -> bool:
        """Claim the recovery of an orphaned send: True for the one dispatcher that may find out
        whether it arrived; the claim lapses after ``alive_s`` should that dispatcher die too."""
        with translated("SET recovering"):
            won = await self.client.set(
                self.keys.recovering(delivery), owner, nx=True, px=max(int(alive_s * 1000), 1)
            )
        return bool(won)

    async def take_over(self, delivery: str, owner: str) -> None:
        """After ``recovering``: the in-flight lock becomes ``owner``'s, to send it again."""
        with translated("take over send"):
            await self.client.set(
                self.keys.inflight(delivery), f"{owner}@{time.time():.3f}", ex=INFLIGHT_TTL_S
            )

    async def give_up_recovery(self, delivery: str) -> None:
        """Could not find out: leave the send orphaned for a later attempt."""
        with translated("DEL recovering"):
            await self.client.delete(self.keys.recovering(delivery))

    async def finish_send(
        self,
        delivery: str,
        ttl_s: int,
        group: str,
        entry_id: str,
        also_sent: Sequence[str] = (),
        drop: str | None = None,
    ) -> None:
        """A channel accepted ``delivery``: mark it (and ``also_sent``: the alerts a digest
        carried) sent, acknowledge its entry, drop the in-flight lock and ``drop`` (a sealed
        digest); one round trip, in that order."""
        with translated("finish send"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.sent(delivery), "1", ex=ttl_s)
                for other in also_sent:
                    pipe.set(self.keys.sent(other), "1", ex=ttl_s)
                pipe.xack(self.keys.outbox_stream, group, entry_id)
                self.outbox.queue_trim(pipe)
                pipe.delete(self.keys.inflight(delivery), self.keys.recovering(delivery))
                if drop is not None:
                    pipe.delete(drop)
                await self.outbox.execute(pipe)

    async def unsure_send(self, delivery: str, since: float) -> None:
        """A send went out but got no answer: leave its lock to a sender that is never alive,
        so the next attempt treats it as orphaned and asks the channel whether it arrived."""
        with translated("SET inflight unsure"):
            await self.client.set(
                self.keys.inflight(delivery), f"{UNSURE}@{since:.3f}", ex=INFLIGHT_TTL_S
            )

    async def end_send(self, delivery: str) -> None:
        with translated("end send"):
            await self.client.delete(self.keys.inflight(delivery), self.keys.recovering(delivery))

    async def hold(
        self,
        bucket: str,
        due: float,
        delivery: str,
        payload: str,
        ttl_s: int,
        group: str,
        entry_id: str,
    ) -> None:
        """Keep an alert (outbox payload, JSON) for a digest or the end of quiet hours: in the
        bucket due at ``due``, then acknowledge its outbox entry. Adding the same delivery
        twice (a redelivered entry) keeps one copy."""
        key = self.keys.held(bucket)
        with translated("hold"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, delivery, payload)
                pipe.expire(key, ttl_s)
                pipe.zadd(self.keys.holds, {bucket: due})
                pipe.xack(self.keys.outbox_stream, group, entry_id)
                self.outbox.queue_trim(pipe)
                await self.outbox.execute(pipe)

    async def release_holds(
        self,
        now: float,
        entry: Callable[[str, float, str], dict[str, Any]],
        ttl_s: int,
        limit: int = 100,
    ) -> int:
        """Turn each held bucket that is due into one outbox entry; how many.

        One script per bucket, atomic in Redis: the bucket's hash is renamed to a fresh sealed
        key (kept ``ttl_s``), the entry ``entry(bucket, due, sealed)`` is appended to the outbox
        and the bucket leaves the schedule. An alert held a moment later starts the bucket
        again and schedules it again; a second dispatcher releasing the same bucket finds it
        unscheduled and does nothing. Nothing can fall between those steps.
        """
        with translated("release holds"):
            due = cast(
                list[tuple[str, float]],
                await self.client.zrangebyscore(
                    self.keys.holds, "-inf", now, 0, limit, withscores=True
                ),
            )
            released = 0
            for bucket, when in due:
                sealed = self.keys.sealed(uuid.uuid4().hex)
                data = encode(entry(str(bucket), float(when), sealed))
                released += int(
                    await self._release_hold(
                        keys=[
                            self.keys.holds,
                            self.keys.held(str(bucket)),
                            sealed,
                            self.keys.outbox_stream,
                        ],
                        args=[str(bucket), data, self.outbox.maxlen, ttl_s],
                    )
                )
        return released

    async def sealed_alerts(self, sealed: str) -> dict[str, str] | None:
        """What a released digest holds (delivery → outbox payload); None once it is gone
        (sent and dropped, or expired)."""
        with translated("HGETALL sealed"):
            held = await self.client.hgetall(sealed)
        return {str(k): str(v) for k, v in held.items()} or None

    async def held_count(self) -> int:
        """How many buckets of held alerts are waiting for their time."""
        with translated("ZCARD holds"):
            return int(await self.client.zcard(self.keys.holds))

    async def delay(self, payload: str, due: float) -> None:
        """Put an outbox payload (JSON) aside until ``due`` (epoch seconds)."""
        with translated("ZADD delayed"):
            await self.client.zadd(self.keys.delayed, {payload: due})

    async def release_delayed(self, now: float, limit: int = 100) -> int:
        """Move the delayed payloads that are due back into the outbox; how many moved.

        Several dispatchers may run this at once: a short lock per payload lets one move it.
        Append first, remove after: a crash in between leaves a duplicate, which the sent marks
        make harmless, never a loss.
        """
        with translated("release delayed"):
            due = cast(
                list[str], await self.client.zrangebyscore(self.keys.delayed, "-inf", now, 0, limit)
            )
            if not due:
                return 0
            async with self.client.pipeline(transaction=False) as pipe:
                for member in due:
                    pipe.set(self.keys.moving(member), "1", nx=True, ex=60)
                won = [m for m, ok in zip(due, await pipe.execute(), strict=True) if ok]
        await self.outbox.add_many([decode(member) for member in won])
        with translated("ZREM delayed"):
            if won:
                await self.client.zrem(self.keys.delayed, *won)
        return len(won)

    async def delayed_count(self) -> int:
        with translated("ZCARD delayed"):
            return int(await self.client.zcard(self.keys.delayed))

    async def dead_letters(self, page: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """The whole dead-letter stream, oldest first, read ``page`` entries at a time."""
        out: list[tuple[str, dict[str, Any]]] = []
        start = "-"
        while True:
            with translated("XRANGE dead"):
                entries = cast(
                    list[Any],
                    await self.client.xrange(self.keys.dead_stream, min=start, count=page),
                )
            out.extend((str(i), decode(fields["data"])) for i, fields in entries)
            if len(entries) < page:
                return out
            start = f"({entries[-1][0]}"

    async def remove_dead(self, ids: Sequence[str]) -> None:
        if ids:
            with translated("XDEL dead"):
                await self.client.xdel(self.keys.dead_stream, *ids)

    async def get_thread(self, channel: str, story: str) -> str | None:
        """The reference of the message that opened ``story`` on ``channel``, if any."""
        with translated("GET thread"):
            ref = await self.client.get(self.keys.thread(channel, story))
        return str(ref) if ref is not None else None

    async def set_thread(self, channel: str, story: str, ref: str) -> None:
        """Remember the message that opened ``story`` on ``channel`` (kept ``seen_ttl``)."""
        with translated("SET thread"):
            await self.client.set(self.keys.thread(channel, story), ref, ex=self.seen_ttl)

    async def add_alerts(
        self, payloads: Sequence[dict[str, Any]], counts: Mapping[str, int], at: float
    ) -> list[str]:
        """Append alert entries to the outbox and add ``counts`` (``alert_count_field`` →
        how many) to the bucket of ``at``: one round trip. Their entry ids."""
        if not payloads and not counts:
            return []
        key = self.keys.alert_counts(alert_bucket(at))
        with translated("XADD outbox"):
            async with self.client.pipeline(transaction=False) as pipe:
                self.outbox.queue(pipe, payloads)
                for alert in _alerts(payloads):  # its record, for feedback and mutes by alert id
                    record = alert_record(
                        alert.get("rule"),
                        alert.get("story"),
                        (alert.get("item") or {}).get("title", ""),
                    )
                    pipe.set(self.keys.alert_record(alert["id"]), record, ex=self.seen_ttl)
                for name, count in counts.items():
                    pipe.hincrby(key, name, count)
                if counts:
                    pipe.expire(key, ALERT_COUNTS_TTL_S)
                results = await pipe.execute()
        return [str(entry_id) for entry_id in results[: len(payloads)]]


def alert_record(rule: str | None, story: str | None, title: str) -> str:
    """What ``{p}alert:{id}`` keeps of an alert sent (for feedback and mutes by alert id)."""
    return json.dumps({"rule": rule, "story": story, "title": title})


def _alerts(payloads: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The alerts of outbox payloads, each once."""
    found: dict[str, Mapping[str, Any]] = {}
    for payload in payloads:
        alert = payload.get("alert")
        if isinstance(alert, Mapping) and isinstance(alert.get("id"), str):
            found.setdefault(alert["id"], alert)
    return list(found.values())
