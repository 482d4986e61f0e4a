"""What story placement reads from Redis before it decides, in one round trip: which items were
seen before (another stream entry brought them: their level-1 keys are taken in here), which
were placed before (their entries redelivered), how often each line and title affix of the others
recurred in a source (boilerplate and site names), and the stream's frequencies of the batch's
words; and what it counts in the stream once the batch is placed.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xxhash

from monitor.core.analysis import Analysis, Line
from monitor.core.stories import (
    Background,
    StoryTally,
    StreamFrequency,
    clean_title,
    counted,
    title_affixes,
)
from monitor.models import Item
from monitor.store import Store
from monitor.store.scripts import Scripts

DAY_S = 86400
WEEK_S = 7 * DAY_S
REPEATED = 3  # a line seen in this many items of one source (within two weeks) is boilerplate
RECURRING_AFFIX = 2  # a title's first or last segment seen this often in one source: a site name
DOCUMENTS = "\x00documents"  # the frequency hash's field counting the documents themselves

PLACED = ("story", "duplicate_of", "matched", "similarity", "confident")

# One call per item. KEYS: its document, this week's line hash (TTL ARGV[1]) and last week's,
# then its level-1 keys (seen by source and GUID, by URL), each set to ARGV[2] (the stream entry
# that brought it) for ARGV[3] seconds unless it exists. An item one of whose keys another entry
# holds was seen before: returns 2, counts nothing. An item already placed (its entry redelivered
# after a crash) counts nothing: returns 0 and its placement's fields (PLACED). Else adds 1 to
# each field (ARGV[4..]) of this week's hash and returns 1 and each field's total over this week
# and the last.
COUNT_LINES = """
local fresh = true
for i = 4, #KEYS do
  if not redis.call('SET', KEYS[i], ARGV[2], 'NX', 'EX', ARGV[3]) then
    if redis.call('GET', KEYS[i]) ~= ARGV[2] then fresh = false end
  end
end
if not fresh then return {2} end
local placed = redis.call('HMGET', KEYS[1], 'story', 'duplicate_of', 'matched', 'similarity',
                          'confident')
if placed[1] then
  return {0, placed[1], placed[2] or '', placed[3] or '', placed[4] or '', placed[5] or ''}
end
local totals = {1}
for i = 4, #ARGV do
  local before = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or 0)
  totals[i - 2] = redis.call('HINCRBY', KEYS[2], ARGV[i], 1) + before
end
if #ARGV > 3 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return totals
"""

# A language's stream frequencies, in one call: KEYS are the window's day hashes. ARGV: the
# field counting documents, then the batch's words joined by newlines (one argument, however
# many words). Returns the window's sum for the documents field and for each word.
FREQUENCIES = """
local fields = {ARGV[1]}
for word in string.gmatch(ARGV[2], '[^\\n]+') do fields[#fields + 1] = word end
local sums = {}
for i = 1, #fields do sums[i] = 0 end
for _, key in ipairs(KEYS) do
  for start = 1, #fields, 1000 do
    local stop = math.min(start + 999, #fields)
    local values = redis.call('HMGET', key, unpack(fields, start, stop))
    for j = 1, stop - start + 1 do
      if values[j] then sums[start + j - 1] = sums[start + j - 1] + tonumber(values[j]) end
    end
  end
end
return sums
"""


@dataclass(frozen=True)
class Once:
    """An item's level-1 keys (``seen.seen_keys``), each taken in once: set to ``value`` (the
    stream entry that brought the item) for ``ttl_s`` unless another entry holds it, in which
    case the item was seen before and is not placed. A key holding ``value`` already is this
    entry's own, redelivered after a crash."""

    keys: Sequence[str]
    value: str
    ttl_s: int


@dataclass
class Inputs:
    """What placement read of a batch: each item's lines that are not boilerplate and its title
    without its site's name; the items placed before (by index: their placement's fields,
    PLACED); the items seen before (by index); each language's stream frequencies as stored
    before the batch; each item's counted words (``PlacementInputs.counts`` gives them to the
    write once the items are placed)."""

    counted: list[set[str]]
    seen: set[int] = field(default_factory=set)
    kept: list[list[Line]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    earlier: dict[int, list[str]] = field(default_factory=dict)
    streams: dict[str, StreamFrequency] = field(default_factory=dict)


class PlacementInputs:
    """Reads (and counts) what placement needs from a source's history and the stream."""

    def __init__(
        self, store: Store, background: Callable[[str], Background], window_s: int
    ) -> None:
        self.store = store
        self.background = background
        self.window_s = window_s
        self.scripts = Scripts(
            store.client,
            lines=COUNT_LINES,
            frequencies=FREQUENCIES,
        )

    async def read(
        self,
        items: Sequence[Item],
        analyses: Sequence[Analysis],
        words: Sequence[Sequence[str]],
        languages: Sequence[str],
        now: float,
        once: Sequence[Once | None] | None = None,
    ) -> Inputs:
        """Round trip 1: one script call per item (seen before, by its ``once`` keys? placed
        already? if neither, count its lines and title affixes per source) and one per language
        (the stream's frequencies of the batch's words, as stored before the batch)."""
        week = int(now // WEEK_S)
        keys = self.store.keys
        # Thousands of lookups and hashes a batch: in a thread, so the event loop goes on.
        own, wanted, per_item, affixes = await asyncio.to_thread(
            self._counted, items, analyses, words, languages
        )
        days = self._days(now)
        takes = list(once) if once is not None else [None] * len(items)
        async with self.store.pipeline() as pipe:
            for item, lines, affix, take in zip(items, per_item, affixes, takes, strict=True):
                self.scripts.call(
                    pipe,
                    "lines",
                    [
                        keys.doc(item.id),
                        keys.lines(item.source, week),
                        keys.lines(item.source, week - 1),
                        *(take.keys if take else ()),
                    ],
                    [
                        2 * WEEK_S + DAY_S,
                        take.value if take else "",
                        take.ttl_s if take else 0,
                        *(key for _, key in lines),
                        *(key for _, key in affix),
                    ],
                )
            for language, words in wanted.items():
                self.scripts.call(
                    pipe,
                    "frequencies",
                    [keys.frequencies(language, day) for day in days],
                    [DOCUMENTS, "\n".join(words)],
                )
            results = await self.scripts.execute(pipe)
        return await asyncio.to_thread(
            self._read_back, items, analyses, per_item, affixes, results, own, wanted
        )

    def _read_back(
        self,
        items: Sequence[Item],
        analyses: Sequence[Analysis],
        per_item: Sequence[Sequence[tuple[Line, str]]],
        affixes: Sequence[Sequence[tuple[str, str]]],
        results: Sequence[Any],
        own: list[set[str]],
        wanted: Mapping[str, Sequence[str]],
    ) -> Inputs:
        """What the round trip answered, as placement takes it (in a thread)."""
        out = Inputs(counted=own)
        for index, (item, analysis, lines, affix, reply) in enumerate(
            zip(items, analyses, per_item, affixes, results, strict=False)
        ):
            if int(reply[0]) == 2:
                out.seen.add(index)
                out.kept.append([])
                out.titles.append(item.title)
                continue
            if not int(reply[0]):
                out.earlier[index] = [str(value) for value in reply[1:]]
                out.kept.append([])
                out.titles.append(item.title)
                continue
            totals = [int(c) for c in reply[1:]]
            repeated = {
                key
                for (_, key), total in zip(lines, totals[: len(lines)], strict=True)
                if total >= REPEATED
            }
            out.kept.append(analysis.kept(repeated))
            recurring = [
                segment
                for (segment, _), total in zip(affix, totals[len(lines) :], strict=True)
                if total >= RECURRING_AFFIX
            ]
            out.titles.append(clean_title(item.title, recurring))
        for language, reply in zip(wanted, results[len(items) :], strict=True):
            sums = [int(c) for c in reply]
            out.streams[language] = StreamFrequency(
                sums[0], {w: c for w, c in zip(wanted[language], sums[1:], strict=True) if c}
            )
        return out

    def _counted(
        self,
        items: Sequence[Item],
        analyses: Sequence[Analysis],
        words: Sequence[Sequence[str]],
        languages: Sequence[str],
    ) -> tuple[
        list[set[str]],
        dict[str, list[str]],
        list[list[tuple[Line, str]]],
        list[list[tuple[str, str]]],
    ]:
        """Each item's counted words, each language's counted words in the batch, and each
        item's lines and title affixes with the keys they are counted under."""
        own: list[set[str]] = []
        documents: dict[str, list[set[str]]] = defaultdict(list)
        for found, language in zip(words, languages, strict=True):
            own.append(counted(set(found), self.background(language)))
            documents[language].append(own[-1])
        wanted = {
            language: sorted(set().union(*distinct)) for language, distinct in documents.items()
        }
        per_item = [list(analysis.keyed_lines) for analysis in analyses]
        return own, wanted, per_item, [_affix_keys(item.title) for item in items]

    def _days(self, now: float) -> list[int]:
        """The day buckets the story window covers, oldest first (the last one: today)."""
        today = int(now // DAY_S)
        return list(range(today - math.ceil(self.window_s / DAY_S), today + 1))

    def counts(self, tallies: Mapping[str, StoryTally], now: float) -> tuple[list[str], list[Any]]:
        """What a placed batch adds to the stream's story frequencies, as the placement write
        takes it (``story_scripts.PLACE``): today's hash of each language, and per language the
        stories started, the words and how many stories each newly appeared in."""
        today = int(now // DAY_S)
        keys: list[str] = []
        args: list[Any] = []
        for language, tally in sorted(tallies.items()):
            words = sorted(tally.counts)
            keys.append(self.store.keys.frequencies(language, today))
            args += [
                tally.documents,
                "\n".join(words),
                "\n".join(str(tally.counts[word]) for word in words),
            ]
        return keys, args

    @property
    def counts_ttl(self) -> int:
        """How long a day's frequency hash is kept: the story window and two days."""
        return self.window_s + 2 * DAY_S


def _affix_keys(title: str) -> list[tuple[str, str]]:
    """A title's first and last segments with the keys they are counted under."""
    affixes = title_affixes(title)
    if affixes is None:
        return []
    return [
        (segment, "t:" + xxhash.xxh3_64_hexdigest(segment.encode()))
        for segment in dict.fromkeys(affixes)
    ]
