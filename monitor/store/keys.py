"""The key schema: every Redis key newsmonitor uses, in one block (``docs/redis.md`` lists them)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ALERT_BUCKET_S",
    "ALERT_COUNTS_TTL_S",
    "Keys",
    "alert_bucket",
    "alert_count_field",
    "digest",
]

_DIGEST_CHARS: Final = 20
_READABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ALERT_BUCKET_S: Final = 300
"""Alerts are counted per rule in buckets of this many seconds (``Keys.alert_counts``)."""


ALERT_COUNTS_TTL_S: Final = 2 * 86400  # a day of buckets is read; a second day is slack


def digest(value: str) -> str:
    """A short, stable, key-safe stand-in for a long or user-supplied string (sha1, 20 hex)."""
    return hashlib.sha1(value.encode("utf-8"), usedforsecurity=False).hexdigest()[:_DIGEST_CHARS]


def _id(value: str) -> str:
    """Our own ids stay readable in keys; anything else (``:``, spaces, very long) is digested.

    A digested id starts with ``~``, which no readable id contains, so the two never collide.
    """
    return value if _READABLE_ID.fullmatch(value) else "~" + digest(value)


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

    def slack_request(self, signature: str) -> str:
        """String, TTL 10 minutes: a Slack request already taken (its signature), refused if
        it comes again."""
        return f"{self.prefix}slack-request:{digest(signature)}"

    @property
    def quiet(self) -> str:
        """Hash: ``story:{id}`` / ``rule:{id}`` → the epoch second a mute or snooze ends."""
        return f"{self.prefix}quiet"

    def alert_record(self, alert: str) -> str:
        """String (JSON: rule, story, title), TTL seen: an alert the process role wrote, for
        feedback and mutes given by alert id."""
        return f"{self.prefix}alert:{_id(alert)}"

    def feedback(self, alert: str) -> str:
        """Hash, TTL seen: the feedback given on an alert (kind, note, when) and its record."""
        return f"{self.prefix}feedback:{_id(alert)}"

    @property
    def feedback_counts(self) -> str:
        """Hash: ``{rule}:{kind}`` → feedback given on the rule's alerts."""
        return f"{self.prefix}feedback-counts"

    def claim(self, rule: str, story: str) -> str:
        """String, TTL = the rule's cooldown: the first alert of ``rule`` for ``story``."""
        return f"{self.prefix}claim:{_id(rule)}:{_id(story)}"

    @property
    def items_stream(self) -> str:
        """Stream: items from the poll role, read by the process role."""
        return f"{self.prefix}{self.streams}items"

    @property
    def history(self) -> str:
        """Stream: the recent items, compact, for trying rules on them (``store.history``);
        shared by a replay that keeps the daemon's state, like the seen and story keys."""
        return f"{self.prefix}history"

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
    def corrections(self) -> str:
        """String, no TTL: how many corrections (``stories split``/``merge``) were made; a
        process worker that sees it change forgets the stories of the items it holds."""
        return f"{self.prefix}story-corrections"

    @property
    def correcting(self) -> str:
        """String, TTL 30 s: a story correction (split, merge) in progress; no batch is
        written into stories meanwhile."""
        return f"{self.prefix}story-correcting"

    @property
    def placements(self) -> str:
        """String, TTL 1 day from the last write: how many batches were written into stories
        (and corrections made); a batch is written only if nothing it read was written since
        it read (``story_scripts.PLACE``)."""
        return f"{self.prefix}story-placements"

    @property
    def placement_log(self) -> str:
        """List, TTL 1 hour: the latest batches' written keys, as 4-byte hashes, newest first
        ("*" for a correction), so a worker writing a batch can tell what changed since it
        read."""
        return f"{self.prefix}story-placement-log"

    def inflight(self, delivery: str) -> str:
        """String (the sender), TTL 1 day: a send in progress, until its outcome is recorded.
        Left behind by a dispatcher that died mid-send, it says "may have arrived"."""
        return f"{self.prefix}inflight:{_id(delivery)}"

    def alive(self, owner: str) -> str:
        """String, short TTL renewed by a heartbeat (and before every send): this consumer or
        dispatcher is running; its pending entries and in-flight sends are its own."""
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

    def band(self, band: str) -> tuple[str, str]:
        """Sorted set, TTL: a bucket of one LSH band's values (``v1:{index}:{16 hex}``), and the
        prefix of this value's members in it. A member is the value's last 13 hex digits, ``|``
        and an item whose MinHash signature has that band (a near-duplicate candidate), scored
        by when it was placed; 4,096 buckets per band keep the many values of few items each
        in small sorted sets instead of a key per value."""
        version, index, value = band.split(":", 2)
        return f"{self.prefix}band:{version}:{index}:{value[:3]}", f"{value[3:]}|"

    def story(self, story: str) -> str:
        """Hash, TTL: a story's first title and url, counts, first/last seen, what it was merged
        into."""
        return f"{self.prefix}story:{_id(story)}"

    def story_items(self, story: str) -> str:
        """Sorted set, TTL: the items of a story, scored by when they arrived."""
        return f"{self.prefix}story-items:{_id(story)}"

    def story_sources(self, story: str) -> str:
        """Set, TTL: the sources that carried a story, duplicates included."""
        return f"{self.prefix}story-sources:{_id(story)}"

    def item_term(self, term: str) -> str:
        """Sorted set, TTL = story window: items indexed under one of their strongest terms,
        scored by when they were published (or arrived)."""
        return f"{self.prefix}item-term:{digest(term)}"

    def frequencies(self, language: str, day: int) -> str:
        """Hash, TTL = story window + two days: how many of the stories placed on one day in
        ``language`` newly held each word (the field ``DOCUMENTS``: how many stories began)."""
        return f"{self.prefix}df:{_id(language)}:{day}"

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
