"""Duplicates and stories on Redis: levels 2 and 3 of docs/dedup.md, a batch at a time.

For a batch of new items, a constant number of pipelined round trips, whatever its size:

1. for each item, whether it was placed before (its entry redelivered) and, if not, the counts
   of its lines and title affixes per source and week (lines that keep recurring are
   boilerplate, affixes that recur are the site's name); the stream's frequencies of the batch's
   words (one hash per language and day, one script call per language) (``placement_inputs.py``);
2. the placement count, then the candidates: items sharing an LSH band of the MinHash
   signature, and items of the story window indexed under the item's strongest terms;
3. only for candidates this process does not hold in memory: their fingerprints, vectors and
   stories;
4. write every decision in one script call (``story_scripts.PLACE``): the items (fingerprint,
   vector, story, what it matched), their bands and index terms, their stories' counts, and
   what the batch adds to the stream's frequencies.

Decisions are made by the pure ``decisions.decide_batch``, item after item, each item seeing
the ones before it in the same batch. No lock is held while a batch is decided: placement is
optimistic. The write goes through only if no other worker wrote, since this batch read, a key
this batch's items read (the placement count and a short log of the keys each batch wrote, as
4-byte hashes, tell); otherwise it names the items that read such a key, which are read again
(steps 2 and 3 for them alone), and the batch is decided and written again. So two items of one
new event, taken by two workers at the same moment, still make one story, and workers whose
batches do not touch each other's keys never wait for each other. Every key has a TTL
(``dedup_ttl``; the term index and the frequencies the story window), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

from monitor.core.analysis import Analysis, Line, analyse
from monitor.core.dedup import fingerprint
from monitor.core.frequencies import background_for, language_code
from monitor.core.html import html_to_text
from monitor.core.stories import (
    THRESHOLDS,
    Background,
    Embedding,
    StoryTally,
    StreamFrequency,
    Thresholds,
    evidence,
    for_length,
    index_terms,
    query_terms,
    semantic_for,
    weighing,
)
from monitor.core.text import tokenize
from monitor.errors import StoreError
from monitor.models import Item
from monitor.store import Store
from monitor.store.decisions import (
    Candidate,
    Context,
    Placement,
    Prepared,
    decide_batch,
    story_id,
)
from monitor.store.documents import candidate_of, document_fields
from monitor.store.finishing import Guard
from monitor.store.optimistic import Reading, Written, key_hashes
from monitor.store.placement_inputs import DOCUMENTS, Once, PlacementInputs
from monitor.store.scripts import Scripts
from monitor.store.story_scripts import CANDIDATES, DETAILS, PLACE

__all__ = [
    "Embedder",
    "Once",
    "Placement",
    "StoryKeeper",
    "analyse_item",
    "story_id",
]

logger = logging.getLogger(__name__)

TERM_CANDIDATES = 40  # most recent items read under each index term
KNOWN_ITEMS = 8192  # earlier items whose fingerprint and vector the process keeps
SHORT_TEXT = 40  # words: below this, the fingerprint covers the title as well
PLACEMENT_WAIT_S = 60.0  # a batch that could not be written for this long is an error
LOG_KEPT = 32  # batches whose written keys the placement log keeps
LOG_TTL_S = 3600  # the placement log outlives any batch's read and write by far
PLACEMENTS_TTL_S = 86400  # the placement count, from its last write
ALONE_BATCHES = 8  # batches written alone before a worker stops sending what its items read
FUTURE_S = 3600  # a publication time this far ahead of the clock is not believed


class Tail(Protocol):
    """Commands that go in the round trip of a batch's placement write (``finishing.Ending``)."""

    def queue(self, pipe: Any) -> None: ...

    def took(self, replies: Sequence[Any]) -> None: ...


End = Callable[[list[Placement | None], Guard], Awaitable[Tail]]
"""What a batch leads to, for its placements (None: seen before), guarded by its write."""

Embedder = Callable[[Sequence[str]], Sequence[Embedding]]
"""Texts to unit-length sentence embeddings (``app.semantic``)."""
EMBEDDED_WORDS = 200  # words of title and text given to the embedder (its input is bounded)


def placed_at(item: Item, now: float, window_s: float) -> float:
    """When an item happened, for the story window: its publication time when it states a
    plausible one (not ahead of the clock, not older than the dedup horizon), else ``now``."""
    if item.published is None:
        return now
    published = item.published.timestamp()
    if published > now + FUTURE_S or published < now - 10 * window_s:
        return now
    return published


def plain_text(text: str) -> str:
    """An item's text as level 2 and 3 compare it: HTML removed (descriptions carry it)."""
    return html_to_text(text) if "<" in text or "&" in text else text


def analyse_item(item: Item) -> Analysis:
    """An item's title and plain text, tokenized once for placement and matching."""
    return analyse(item.title, plain_text(item.text))


class StoryKeeper:
    """Places new items into stories."""

    def __init__(
        self,
        store: Store,
        *,
        language: Callable[[str | None, Sequence[str]], str] = language_code,
        background: Callable[[str], Background] = background_for,
        window_s: int = 7 * 86400,
        ttl_s: int = 30 * 86400,
        thresholds: Thresholds | None = None,
        embed: Embedder | None = None,
    ) -> None:
        """``language(stated, words)`` names an item's language (guessed from its words when
        the item does not say); ``background(code)`` gives that language's word frequencies.
        ``embed`` (the semantic extra) turns texts into unit sentence embeddings, blended into
        every similarity; it runs in a thread, off the event loop."""
        self.store = store
        self.language = language
        self.background = background
        self.window_s = window_s
        self.ttl_s = ttl_s
        self.embed = embed
        self.thresholds = thresholds or THRESHOLDS
        self.inputs = PlacementInputs(store, background, window_s)
        self._warmed: set[str] = set()
        # Earlier items as placement compares them, newest last: their fingerprints and
        # vectors never change, so only their story is read again (``_candidates``).
        self._known: OrderedDict[str, Candidate] = OrderedDict()
        self._corrections: str | None = None  # the count of corrections they were read under
        self._written_at: int | None = None  # the placement count after this worker's last write
        self.retries: Counter[str] = Counter()  # writes sent again, by what the write answered
        self.read_again = 0  # items whose candidates were read again (another worker wrote)
        # Batches written in a row with no other worker writing meanwhile (alone until seen).
        self._alone = ALONE_BATCHES
        self.scripts = Scripts(store.client, candidates=CANDIDATES, details=DETAILS, place=PLACE)

    async def load(self, *others: Scripts) -> None:
        """Load placement's scripts (and ``others``) into Redis, in one round trip: a batch's
        first pipeline then finds them all, and its calls run in the order they were queued."""
        await self.scripts.load(
            [*self.inputs.scripts.shas.values(), *(s for o in others for s in o.shas.values())]
        )

    async def place(
        self, items: Sequence[Item], now: float, analyses: Sequence[Analysis | None] | None = None
    ) -> list[Placement]:
        """Place each item; an item placed before (its entry is being redelivered after a
        crash) gets its earlier placement back, unchanged. ``analyses``: the items' words
        already found (``analyse_item``), else found here."""
        if not items:
            return []
        given = list(analyses) if analyses is not None else [None] * len(items)
        found = [a or analyse_item(item) for item, a in zip(items, given, strict=True)]
        placed = await self._place(items, now, found, None)
        return [p for p in placed if p is not None]

    async def place_unseen(
        self,
        items: Sequence[Item],
        now: float,
        analyses: Sequence[Analysis],
        once: Sequence[Once],
        end: End | None = None,
    ) -> list[Placement | None]:
        """As ``place``, and each item's level-1 keys are taken in (``Once``) in the round trip
        that reads its lines: an item another stream entry brought before gets None, unplaced.
        ``end(placements, guard)``: what the batch leads to (``finishing.Ending``), built for
        the placements decided and written in the same round trip, guarded by the write."""
        if not items:
            return []
        return await self._place(items, now, analyses, once, end)

    def _languages(
        self, items: Sequence[Item], analyses: Sequence[Analysis]
    ) -> tuple[list[list[str]], list[str]]:
        """Each item's words and language; a language's frequencies are loaded when first met."""
        raw_words = [analysis.words() for analysis in analyses]
        languages = [
            self.language(item.language, found[:200])
            for item, found in zip(items, raw_words, strict=True)
        ]
        for language in sorted(set(languages) - self._warmed):
            self.background(language)("the")
            self._warmed.add(language)
        return raw_words, languages

    async def _placed_before(
        self, items: Sequence[Item], earlier: Mapping[int, Sequence[str]]
    ) -> dict[int, Placement]:
        """The placements of the items placed before, with their stories' source counts (a
        round trip only when there are such items)."""
        if not earlier:
            return {}
        keys = self.store.keys
        async with self.store.pipeline() as pipe:
            for story, *_ in earlier.values():
                pipe.scard(keys.story_sources(story))
            counts = await pipe.execute()
        return {
            index: Placement(
                items[index].id,
                story,
                duplicate_of or None,
                False,
                max(int(count), 1),
                float(similarity or 0),
                matched or None,
                confident != "0",
            )
            for (index, (story, duplicate_of, matched, similarity, confident)), count in zip(
                earlier.items(), counts, strict=True
            )
        }

    async def _place(
        self,
        items: Sequence[Item],
        now: float,
        analyses: Sequence[Analysis],
        once: Sequence[Once] | None,
        end: End | None = None,
    ) -> list[Placement | None]:
        # Each item's language (guessed from its words when it does not say) and, the first
        # time a language is met, its frequency table (tens of MB, a second to read): CPU work,
        # in a thread.
        raw_words, languages = await asyncio.to_thread(self._languages, items, analyses)
        inputs = await self.inputs.read(items, analyses, raw_words, languages, now, once)
        earlier: dict[int, Placement | None] = dict.fromkeys(inputs.seen)
        earlier.update(await self._placed_before(items, inputs.earlier))
        total = len(items)
        fresh = [i for i in range(total) if i not in earlier]
        if not fresh:
            return [earlier[i] for i in range(total)]
        items = [items[i] for i in fresh]
        analyses = [analyses[i] for i in fresh]
        titles = [inputs.titles[i] for i in fresh]
        kept = [inputs.kept[i] for i in fresh]
        # The batch's CPU work runs off the event loop: the other roles of the process (a
        # dispatcher sending alerts) go on meanwhile.
        prepared = await asyncio.to_thread(
            self._prepare,
            items,
            analyses,
            kept,
            titles,
            [languages[i] for i in fresh],
            inputs.streams,
            [inputs.counted[i] for i in fresh],
            now,
        )
        if self.embed is not None:
            texts = [
                " ".join([title, ". ", *analysis.joined(lines).split()[:EMBEDDED_WORDS]])
                for title, analysis, lines in zip(titles, analyses, kept, strict=True)
            ]
            embeddings = await asyncio.to_thread(self.embed, texts)
            for p, embedding in zip(prepared, embeddings, strict=True):
                p.embedding = tuple(float(x) for x in embedding)
                p.semantic = semantic_for(p.words, lexical=for_length(p.words, self.thresholds))

        def merged(decided: Sequence[Placement]) -> list[Placement | None]:
            new = iter(decided)
            return [earlier[i] if i in earlier else next(new) for i in range(total)]

        ending = None
        if end is not None:

            async def ending(decided: Sequence[Placement], token: str) -> Tail:
                return await end(merged(decided), Guard(self.store.keys.doc(items[0].id), token))

        decided, placed = await self._decide_and_write(prepared, now, ending)
        self._known.update(placed)  # known to the next batches, now that they are written
        return merged(decided)

    def _prepare(
        self,
        items: Sequence[Item],
        analyses: Sequence[Analysis],
        kept: Sequence[Sequence[Line]],
        titles: Sequence[str],
        languages: Sequence[str],
        streams: Mapping[str, StreamFrequency],
        counted: Sequence[set[str]],
        now: float,
    ) -> list[Prepared]:
        """Pure: each item's fingerprint, evidence and first vector (weighed with the stream as
        stored before the batch), and the terms it looks for candidates under (in a thread)."""
        prepared, keys = [], self.store.keys
        for item, analysis, lines, title, language, own in zip(
            items, analyses, kept, titles, languages, counted, strict=True
        ):
            tokens = analysis.tokens_of(lines)
            heading = analysis.title_tokens if title == analysis.title else tokenize(title)
            # A short body (a teaser, "Comments") says little: the title counts too.
            words = (
                list(tokens.words)
                if len(tokens.words) >= SHORT_TEXT
                else [*heading.words, *tokens.words]
            )
            fp = fingerprint(words)
            background = self.background(language)
            terms = evidence(title, analysis.text, text_tokens=tokens, title_tokens=heading)
            weighed = weighing(terms, streams[language], background, own)
            vector = weighed.vector()
            # Words the language uses everywhere (not counted in the stream) and those many
            # recent stories hold single out no event: no index or query term is one of them.
            common = weighed.common() | (weighed.terms.keys() - own)
            bands, query = fp.bands(), query_terms(vector, common)
            prepared.append(
                Prepared(
                    item,
                    placed_at(item, now, self.window_s),
                    language,
                    fp,
                    weighed,
                    own,
                    vector,
                    bands,
                    index_terms(vector, common),
                    query,
                    len(words),
                    common=common,
                    band_keys=[keys.band(band) for band in bands],
                    query_keys=[keys.item_term(term) for term in query],
                )
            )
        return prepared

    async def _decide_and_write(
        self,
        prepared: Sequence[Prepared],
        now: float,
        ending: Callable[[Sequence[Placement], str], Awaitable[Tail]] | None,
    ) -> tuple[list[Placement], dict[str, Candidate]]:
        """Read the candidates, decide, write; when another worker wrote since, in between,
        what some items read, read those again, decide again and write again. Returns the
        placements (with their stories' source counts) and the batch's items as later batches
        compare them."""
        everything = range(len(prepared))
        reading = await self._read(prepared, everything, now)
        if self._written_at is not None and reading.at != self._written_at:
            self._alone = 0
        # While other workers write, send what each item read, so that a write finding
        # their writes in between tells which items must read again, in the same call.
        checked = self._alone < ALONE_BATCHES
        context = Context(self.window_s, self.thresholds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PLACEMENT_WAIT_S
        pause = 0.002
        before: list[Placement] | None = None  # what was decided before reading some again
        recheck: set[int] = set()
        while True:
            decided, placed, tallies = await asyncio.to_thread(
                decide_batch,
                prepared,
                reading.candidates,
                [reading.bands[i] for i in everything],
                [reading.terms[i] for i in everything],
                context,
                before,
                recheck,
            )
            # The write's own token goes into its first item's document: the batch's end, in the
            # same round trip, runs only if it finds it there (this very write went through).
            token = uuid.uuid4().hex[:16]
            tail = await ending(decided, token) if ending is not None else None
            arguments = partial(
                self._write_arguments, prepared, decided, tallies, now, reading.at, token
            )
            written = await self._write(arguments, checked, tail)
            if written.outcome == "unchecked":
                self.retries[written.outcome] += 1
                checked = True
                written = await self._write(arguments, checked, tail)
            if written.outcome == "ok":
                alone = written.at == reading.at + 1 and not recheck
                self._alone = self._alone + 1 if alone else 0
                self._written_at = written.at
                sources = written.sources
                return [
                    replace(p, sources=n) for p, n in zip(decided, sources, strict=True)
                ], placed
            self.retries[written.outcome] += 1
            if loop.time() > deadline:
                raise StoreError(
                    f"story placement: the batch could not be written for {PLACEMENT_WAIT_S:g} s"
                    f" ({written.outcome})"
                )
            checked = True
            if written.outcome == "conflict":
                # Only the items that read what was written since are read and decided again
                # (and those after them, from the first whose story or counts change).
                self.read_again += len(written.again)
                fresher = await self._read(prepared, written.again, now)
                recheck = {i for i in written.again if fresher.found(i) != reading.found(i)}
                reading.update(fresher)
                reading.at = written.at  # every item was checked up to here
                before = decided
                continue
            if written.outcome == "busy":  # a correction is being made: wait for it
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
            self.read_again += len(prepared)
            reading = await self._read(prepared, everything, now)
            before, recheck = None, set()

    async def _read(
        self, prepared: Sequence[Prepared], indices: Sequence[int], now: float
    ) -> Reading:
        """Read the placement count, the count of corrections and, for the items at
        ``indices``, the items sharing a band or an index term with each (one round trip);
        then, in a second round trip and only for those this process does not hold, what each
        of them is (fingerprint, vector, story). The items it holds keep their story until a
        correction (a split or a merge) is counted: then it forgets them all. The placement
        count is read first: whatever is written after it, the write will see."""
        keys = self.store.keys
        async with self.store.pipeline() as pipe:
            pipe.get(keys.placements)
            pipe.get(keys.corrections)
            for i in indices:
                p = prepared[i]
                self.scripts.call(
                    pipe,
                    "candidates",
                    [key for key, _ in p.band_keys] + p.query_keys,
                    [
                        len(p.bands),
                        TERM_CANDIDATES,
                        p.when + self.window_s,
                        p.when - self.window_s,
                        now - self.ttl_s,
                        *(member for _, member in p.band_keys),
                    ],
                )
            at, corrections, *found_per_item = await self.scripts.execute(pipe)
        known = self._known
        if corrections != self._corrections:
            known.clear()
            self._corrections = corrections
        reading = Reading(int(at or 0))
        for i, found in zip(indices, found_per_item, strict=True):
            bands = len(prepared[i].bands)
            reading.bands[i] = set().union(*found[:bands])
            reading.terms[i] = set().union(*found[bands:])
        wanted = sorted(set().union(*reading.bands.values(), *reading.terms.values()))
        unknown = [item for item in wanted if item not in known]
        docs: list[Any] = []
        if unknown:
            async with self.store.pipeline() as pipe:
                self.scripts.call(pipe, "details", [keys.doc(item) for item in unknown], [])
                [docs] = await self.scripts.execute(pipe)
        fetched = dict(zip(unknown, docs, strict=True))
        for item in wanted:
            if item in fetched:
                candidate = candidate_of(item, *fetched[item])
                if candidate is None:  # expired
                    continue
                known[item] = candidate
            reading.candidates[item] = known[item]
            known.move_to_end(item)
        while len(known) > KNOWN_ITEMS:
            known.popitem(last=False)
        return reading

    async def _write(
        self,
        arguments: Callable[[bool], tuple[list[str], list[Any]]],
        checked: bool,
        tail: Tail | None = None,
    ) -> Written:
        """Round trip 4, one script call: remember every item and what its story became, and
        count what the batch added to the stream's story frequencies, unless another worker
        wrote what the batch read since it read (``checked``: send the keys each item read, for
        the script to tell which); ``tail`` goes in the same round trip."""
        # Thousands of arguments (``_write_arguments``): built in a thread, off the event loop.
        keys, args = await asyncio.to_thread(arguments, checked)
        async with self.store.pipeline() as pipe:
            self.scripts.call(pipe, "place", keys, args)
            if tail is not None:
                tail.queue(pipe)
            reply, *rest = await self.scripts.execute(pipe)
        if tail is not None:
            tail.took(rest)
        return Written.of(reply)

    def _write_arguments(
        self,
        prepared: Sequence[Prepared],
        placements: Sequence[Placement],
        tallies: Mapping[str, StoryTally],
        now: float,
        read_at: int,
        token: str,
        checked: bool,
    ) -> tuple[list[str], list[Any]]:
        """The placement script's keys and arguments for a decided batch (``PLACE``), read at
        the placement count ``read_at``; ``token`` goes into the first item's document."""
        keys, ttl = self.store.keys, self.ttl_s
        frequencies, counted = self.inputs.counts(tallies, now)
        item_keys: list[str] = []
        item_args: list[Any] = []
        for p, placed in zip(prepared, placements, strict=True):
            item = p.item
            duplicate = placed.duplicate_of is not None
            terms = [] if duplicate else p.terms
            fields = document_fields(p, placed, now)
            if not item_keys:
                fields += ["batch", token]
            item_keys += [
                keys.doc(item.id),
                keys.story(placed.story),
                keys.story_items(placed.story),
                keys.story_sources(placed.story),
                *(key for key, _ in p.band_keys),
                *(keys.item_term(t) for t in terms),
            ]
            # What the item read its candidates under (its bands and query terms), and what
            # writing it changes for later readers (its bands and index terms).
            bands = key_hashes("b", p.bands)
            item_args += [
                bands + key_hashes("t", p.query) if checked else b"",
                bands + key_hashes("t", terms),
                item.id,
                item.source,
                p.when,
                len(p.bands),
                len(terms),
                int(placed.new_story),
                int(duplicate),
                item.title,
                item.url or "",
                placed.story,
                len(fields),
                *(member + item.id for _, member in p.band_keys),
                *fields,
            ]
        return (
            [
                keys.placements,
                keys.placement_log,
                keys.correcting,
                keys.stories,
                *frequencies,
                *item_keys,
            ],
            [
                read_at,
                LOG_KEPT,
                int(checked),
                len(prepared),
                len(frequencies),
                now,
                ttl,
                self.window_s,
                self.inputs.counts_ttl,
                DOCUMENTS,
                LOG_TTL_S,
                PLACEMENTS_TTL_S,
                *counted,
                *item_args,
            ],
        )
