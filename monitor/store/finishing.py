"""What a processed batch leads to, written in one script call (``FINISH``): each (rule, story)
claimed unless the rule is snoozed or a story muted, the alert that won or lost the claim
appended to the outbox with its record and count, the batch's entries acknowledged, its new
items added to the history.

The call goes in the round trip that writes the batch's stories (``story_scripts.PLACE``),
guarded: it does anything only if the document of the batch's first item holds the token of
that very write (``batch``, fresh for each attempt), that is, only if the write went through.
A write that was refused (another worker wrote what the batch read) refuses the end with it;
the batch is decided again and both are sent again. So a batch costs one round trip for its
placement write and its end, and an entry is never acknowledged without its alerts: the
script writes the alerts, then acknowledges (the entries in chunks, as Lua's ``unpack`` takes
a few thousand values at most).

An alert is built before the claim is known, as a first alert and as a follow-up; the script
appends the one the claim calls for. Each payload's beginning that both forms share (the
item) is sent once per channel. How many sources carried the item's story is known only once
the batch is written: the alert's JSON is sent in two pieces around that count, which the
script reads (``SCARD``) and puts between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from monitor.store import Store
from monitor.store.keys import ALERT_COUNTS_TTL_S, alert_bucket
from monitor.store.quiet import CLAIM_FUNCTION, Claim
from monitor.store.scripts import Scripts
from monitor.store.streams import TRIM_FUNCTION, encode

__all__ = ["FINISH", "Claimed", "Ending", "Guard", "Variant", "halves", "scripts"]

SOURCES_MARK: Final = 987_654_321_987_654
"""The sources count an alert is encoded with, to be cut out and replaced by the real count."""

# KEYS: [1] the guard (the document of the batch's first written item; any key unguarded),
# [2] the quiet hash, [3] the outbox, [4] this bucket's alert counts, [5] the items stream,
# [6] the history; then per claim its claim key, its placed story's sources and its record.
# ARGV: [1] the token the guard's ``batch`` field must hold ('' unguarded), [2] now, [3] the
# outbox's MAXLEN, [4] the records' TTL, [5] the counts' TTL, [6] the group, [7] entries to
# acknowledge, [8] history entries, [9] the history's MINID, [10] claims; the entry ids; the
# history entries; per claim: rule, placed story, story, value, TTL, its record, how many payloads'
# beginnings both alerts share and those, then for the first alert and the follow-up: 1 if
# there is one, its count field ('' not counted), how many payloads, and each payload's JSON
# after the shared beginning up to its sources count, and after that count.
# The items stream is trimmed of what every group is done with (``streams.TRIM_FUNCTION``).
# Returns {0} when the guard does not hold (nothing done); else {1, entries acknowledged, and
# per claim what ``quiet.CLAIM_FUNCTION`` returned (-1 quiet, 1 won, 0 lost) and the sources}.
FINISH = (
    TRIM_FUNCTION
    + CLAIM_FUNCTION
    + """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'batch') ~= ARGV[1] then return {0} end
local now = tonumber(ARGV[2])
local n, h, c = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local a, out, counted = 11 + n + h, {1, 0}, false
for i = 1, c do
  local sources, record = KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local won = claim(KEYS[2], KEYS[4 + 3 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
                    ARGV[a + 4], now)
  local shared = tonumber(ARGV[a + 6])
  local first = a + 7 + shared
  local later = first + 3 + 2 * tonumber(ARGV[first + 2])
  local v = nil
  if won == 1 then v = first elseif won == 0 then v = later end
  local count = math.max(redis.call('SCARD', sources), 1)
  if v and ARGV[v] == '1' then
    local m = tonumber(ARGV[v + 2])
    for j = 0, m - 1 do
      local head = ''
      if j < shared then head = ARGV[a + 7 + j] end
      local data = head .. ARGV[v + 3 + 2 * j] .. count .. ARGV[v + 4 + 2 * j]
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'data', data)
    end
    if m > 0 then redis.call('SET', record, ARGV[a + 5], 'EX', ARGV[4]) end
    if ARGV[v + 1] ~= '' then
      redis.call('HINCRBY', KEYS[4], ARGV[v + 1], 1)
      counted = true
    end
  end
  out[#out + 1] = won
  out[#out + 1] = count
  a = later + 3 + 2 * tonumber(ARGV[later + 2])
end
if counted then redis.call('EXPIRE', KEYS[4], ARGV[5]) end
for first = 11, 10 + n, 1000 do  -- unpack takes a few thousand values at most
  local last = math.min(first + 999, 10 + n)
  out[2] = out[2] + redis.call('XACK', KEYS[5], ARGV[6], unpack(ARGV, first, last))
end
if n > 0 then trim(KEYS[5]) end
for j = 11 + n, 10 + n + h do
  redis.call('XADD', KEYS[6], 'MINID', ARGV[9], '*', 'd', ARGV[j])
end
return out
"""
)


def scripts(client: Any) -> Scripts:
    """The end's script, to call, run and load on ``client``."""
    return Scripts(client, finish=FINISH)


def halves(payload: dict[str, Any]) -> tuple[str, str]:
    """An outbox payload's JSON cut around its alert's sources count (``SOURCES_MARK``)."""
    text = encode(payload)
    mark = f'"sources":{SOURCES_MARK}'
    if text.count(mark) != 1:
        raise ValueError("an alert's sources count must appear once in its payload")
    before, after = text.split(mark)
    return before + '"sources":', after


@dataclass(frozen=True)
class Variant:
    """An alert as it would go out (first alert or follow-up): whether there is one, the
    count field it adds to (``''``: not counted), and its payloads cut by ``halves``."""

    exists: bool = False
    counted: str = ""
    payloads: Sequence[tuple[str, str]] = ()

    def args(self) -> list[Any]:
        return [
            int(self.exists),
            self.counted,
            len(self.payloads),
            *(part for pair in self.payloads for part in pair),
        ]


@dataclass(frozen=True)
class Claimed:
    """A rule's match to claim, with the alert its record and the two alerts it may send; each
    payload's beginning that both alerts share (most of it: the item) is sent once."""

    claim: Claim
    record: str  # the alert's record (JSON: rule, story, title), kept for feedback and mutes
    alert: str  # the alert's id
    first: Variant
    followup: Variant
    shared: Sequence[str] = ()

    @classmethod
    def of(
        cls, claim: Claim, record: str, alert: str, first: Variant, followup: Variant
    ) -> Claimed:
        """The claim, its payloads' shared beginnings taken out of both alerts."""
        if claim.ttl_s < 1:
            raise ValueError("a claim needs a TTL of at least 1 s")
        if not (first.exists and followup.exists) or len(first.payloads) != len(followup.payloads):
            return cls(claim, record, alert, first, followup)
        shared = [
            a[: _common_start(a, b)]
            for (a, _), (b, _) in zip(first.payloads, followup.payloads, strict=True)
        ]

        def rest(variant: Variant) -> Variant:
            return replace(
                variant,
                payloads=[
                    (before[len(head) :], after)
                    for head, (before, after) in zip(shared, variant.payloads, strict=True)
                ],
            )

        return cls(claim, record, alert, rest(first), rest(followup), shared)

    def args(self) -> list[Any]:
        c = self.claim
        return [
            c.rule,
            c.placed,
            c.story,
            c.value,
            c.ttl_s,
            self.record,
            len(self.shared),
            *self.shared,
            *self.first.args(),
            *self.followup.args(),
        ]


def _common_start(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` begin with alike (slices compared, in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(frozen=True)
class Guard:
    """The placement write a batch's end depends on: the document of its first written item,
    and the token that write puts there (``batch``), unique to the write."""

    doc: str
    token: str


@dataclass
class Ending:
    """One batch's end (``FINISH``), to queue on a pipeline and read back from its replies."""

    store: Store
    group: str
    entries: Sequence[str]
    recent: Sequence[str]  # the new items as the history keeps them (``history.pack``)
    claims: Sequence[Claimed]
    now: float
    guard: Guard | None = None
    ran: bool = False
    acknowledged: int = 0
    outcomes: list[tuple[int, int]] = field(default_factory=list)  # per claim: won, sources

    def queue(self, pipe: Any) -> None:
        """Queue the end on ``pipe`` (which trims the items stream of what every group is
        done with), then the history's trim to its cap (harmless should the guard refuse)."""
        store, keys = self.store, self.store.keys
        history = store.history
        kept = history.keep_s > 0 and bool(self.recent)
        args: list[Any] = [
            self.guard.token if self.guard else "",
            self.now,
            store.outbox.maxlen,
            store.seen_ttl,
            ALERT_COUNTS_TTL_S,
            self.group,
            len(self.entries),
            len(self.recent) if kept else 0,
            history.oldest(self.now),
            len(self.claims),
            *self.entries,
            *(self.recent if kept else ()),
        ]
        claim_keys: list[str] = []
        for c in self.claims:
            claim = c.claim
            claim_keys += [
                keys.claim(claim.rule, claim.story),
                keys.story_sources(claim.placed),
                keys.alert_record(c.alert),
            ]
            args += c.args()
        scripts(store.client).call(
            pipe,
            "finish",
            [
                self.guard.doc if self.guard else keys.quiet,
                keys.quiet,
                keys.outbox_stream,
                keys.alert_counts(alert_bucket(self.now)),
                keys.items_stream,
                keys.history,
                *claim_keys,
            ],
            args,
        )
        if kept:
            pipe.xtrim(keys.history, maxlen=history.cap, approximate=True)

    def took(self, replies: Sequence[Any]) -> None:
        """Read the end's replies (those ``queue`` added, in order)."""
        reply = replies[0]
        self.ran = bool(int(reply[0]))
        if self.ran:
            self.acknowledged = int(reply[1])
            values = [int(x) for x in reply[2:]]
            self.outcomes = list(zip(values[0::2], values[1::2], strict=True))

    async def write(self) -> None:
        """The end alone, in a round trip of its own (no placement write to go with)."""
        async with self.store.pipeline() as pipe:
            self.queue(pipe)
            self.took(await scripts(self.store.client).execute(pipe))
