"""What story placement reads from Redis before it decides, in one round trip and one script
call per language: how often each line and title affix recurred in a source (boilerplate and
site names), and the stream's document frequencies of the batch's words, which it then counts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
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

# One call per item: add 1 to each field (ARGV[2..]) of this week's hash KEYS[1] (TTL ARGV[1]),
# and return each field's total over this week and the last (KEYS[2]).
COUNT_LINES = """
local totals = {}
for i = 2, #ARGV do
  local before = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or 0)
  totals[i - 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], 1) + before
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
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

# What a batch adds to a language's frequencies, in one call: KEYS[1] is today's hash. ARGV:
# its TTL, how many stories the batch started, the field counting them, the words joined by
# newlines and how many stories each newly appeared in (joined likewise).
COUNT_FREQUENCIES = """
local today = KEYS[1]
if ARGV[2] ~= '0' then redis.call('HINCRBY', today, ARGV[3], ARGV[2]) end
local counts = {}
for count in string.gmatch(ARGV[5], '[^\\n]+') do counts[#counts + 1] = count end
local i = 0
for word in string.gmatch(ARGV[4], '[^\\n]+') do
  i = i + 1
  redis.call('HINCRBY', today, word, counts[i])
end
redis.call('EXPIRE', today, ARGV[1])
return i
"""


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
            count=COUNT_FREQUENCIES,
        )

    async def read(
        self,
        items: Sequence[Item],
        analyses: Sequence[Analysis],
        words: Sequence[Sequence[str]],
        languages: Sequence[str],
        now: float,
    ) -> tuple[list[list[Line]], list[str], dict[str, StreamFrequency], list[set[str]]]:
        """Round trip 1, and one script call per language: count lines and title affixes per
        source; read the stream's frequencies of the batch's words.

        Returns the lines of each text that are not boilerplate, the titles without their
        site's name, each language's stream frequencies as stored before the batch, and each
        item's counted words (``count`` adds them once the items are placed)."""
        week = int(now // WEEK_S)
        keys = self.store.keys
        per_item = [analysis.keyed_lines for analysis in analyses]
        affixes = [_affix_keys(item.title) for item in items]
        documents: dict[str, list[set[str]]] = defaultdict(list)
        own: list[set[str]] = []
        for found, language in zip(words, languages, strict=True):
            own.append(counted(set(found), self.background(language)))
            documents[language].append(own[-1])
        days = self._days(now)
        wanted = {
            language: sorted(set().union(*distinct)) for language, distinct in documents.items()
        }
        async with self.store.pipeline() as pipe:
            for item, lines, affix in zip(items, per_item, affixes, strict=True):
                counted_keys = [key for _, key in lines] + [key for _, key in affix]
                if counted_keys:
                    self.scripts.call(
                        pipe,
                        "lines",
                        [keys.lines(item.source, week), keys.lines(item.source, week - 1)],
                        [2 * WEEK_S + DAY_S, *counted_keys],
                    )
            for language, words in wanted.items():
                self.scripts.call(
                    pipe,
                    "frequencies",
                    [keys.frequencies(language, day) for day in days],
                    [DOCUMENTS, "\n".join(words)],
                )
            results = await self.scripts.execute(pipe)
        cleaned: list[list[Line]] = []
        titles: list[str] = []
        position = 0
        for item, analysis, lines, affix in zip(items, analyses, per_item, affixes, strict=True):
            size = len(lines) + len(affix)
            if not size:
                cleaned.append(analysis.kept())
                titles.append(item.title)
                continue
            totals = [int(c) for c in results[position]]
            position += 1
            repeated = {
                key
                for (_, key), total in zip(lines, totals[: len(lines)], strict=True)
                if total >= REPEATED
            }
            cleaned.append(analysis.kept(repeated))
            recurring = [
                segment
                for (segment, _), total in zip(affix, totals[len(lines) :], strict=True)
                if total >= RECURRING_AFFIX
            ]
            titles.append(clean_title(item.title, recurring))
        streams: dict[str, StreamFrequency] = {}
        for language, words in wanted.items():
            sums = [int(c) for c in results[position]]
            position += 1
            streams[language] = StreamFrequency(
                sums[0], {w: c for w, c in zip(words, sums[1:], strict=True) if c}
            )
        return cleaned, titles, streams, own

    def count(self, pipe: Any, tallies: Mapping[str, StoryTally], now: float) -> None:
        """Queue on ``pipe`` one call per language adding what a placed batch brought to the
        stream's story frequencies (today's hash, kept for the story window)."""
        ttl = self.window_s + 2 * DAY_S
        today = int(now // DAY_S)
        for language, tally in sorted(tallies.items()):
            words = sorted(tally.counts)
            self.scripts.call(
                pipe,
                "count",
                [self.store.keys.frequencies(language, today)],
                [
                    ttl,
                    tally.documents,
                    DOCUMENTS,
                    "\n".join(words),
                    "\n".join(str(tally.counts[word]) for word in words),
                ],
            )

    def _days(self, now: float) -> list[int]:
        """The day buckets the story window covers, oldest first (the last one: today)."""
        today = int(now // DAY_S)
        return list(range(today - math.ceil(self.window_s / DAY_S), today + 1))


def _affix_keys(title: str) -> list[tuple[str, str]]:
    """A title's first and last segments with the keys they are counted under."""
    affixes = title_affixes(title)
    if affixes is None:
        return []
    return [
        (segment, "t:" + xxhash.xxh3_64_hexdigest(segment.encode()))
        for segment in dict.fromkeys(affixes)
    ]
