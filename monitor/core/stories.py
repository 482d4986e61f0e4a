"""Stories without I/O: which earlier item an item duplicates, and which story it joins.

Level 3 compares what articles are *about*, not their wording. An item's **evidence** is its
terms with the weight of where they stand (title, lead, names, numbers); its **vector** weighs
that evidence by how rare each term is *in the recent stream*, with the term's frequency in the
language only as a prior. The stream's frequency of a term is how many recent stories hold it
(over the story window, per language; ``StoryTally``), not how many articles: a name found in
fifteen of today's stories (Biden, Gaza) says little about which event an article reports,
however rare it is in the language, while the thirty reports of one election do not make its
own words common. An item joins the story it matches best (its best member, tempered by its
second best: ``story_match``) when that score clears ``Thresholds.join``; a story is the set of
its members, never a drifting sum, so it keeps the identity of its first reports. Only a tie at
or above ``Thresholds.confident`` makes a rule's match a follow-up (``docs/dedup.md``).

Every constant here was chosen on the real labelled sets of ``monitor eval stories``, never on
a set written for this project.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.core.dedup import Fingerprint, is_duplicate, jaccard
from monitor.core.text import Tokens, tokenize

Background = Callable[[str], float]
"""A word's Zipf frequency in ordinary text (about 7 for "the", 0 for a word never seen)."""

TOP_TERMS = 40  # terms kept per item
INDEX_TERMS = 12  # an item's strongest terms, under which later items find it
QUERY_TERMS = 40  # the terms under which an item looks for earlier ones
COMMON_SHARE = 0.03  # a term this share of the stream's stories hold is no index term
TITLE_WEIGHT = 5.0  # a title word counts as much as this many mentions in the body
LEAD_WEIGHT = 2.0  # a word of the lead (LEAD_WORDS) counts double: it says what happened
LEAD_WORDS = 50
NAME_BOOST = 1.5  # names (capitalized inside a sentence) identify an event
NUMBER_BOOST = 1.3  # numbers of three characters or more (a toll, a year, an address)
SHORT_NUMBER = 0.5  # "2", "10": too common to identify anything
STORY_SPREAD = 0.4  # how much a story's second-best member tempers its best (``story_match``)
PRIOR_DOCS = 300  # how many documents the language prior is worth against the stream's counts
PRIOR_WORDS = 100  # an ordinary document's length, to turn a word frequency into a document one
MIN_SHARE = 1e-5  # the smallest document share a word is given (names never seen before)
STREAM_SHARE = 0.05  # words in this share of ordinary documents (the, said) are not counted


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``join``: an item joins the story it matches this much (``story_match``);
    ``confident``: the tie is sure enough for a rule's match to be a follow-up, not an alert."""

    join: float = 0.25
    confident: float = 0.40


THRESHOLDS = Thresholds()
SEMANTIC_WEIGHT = 0.7  # with sentence embeddings: their share of a short item's similarity
SEMANTIC_THRESHOLDS = Thresholds(join=0.45, confident=0.65)
SHORT_WORDS = 40  # up to this many words, an item is short: the embedding has its full weight


@dataclass(frozen=True, slots=True)
class Semantic:
    """How much the embeddings count for one item, and the thresholds that go with it."""

    weight: float
    thresholds: Thresholds


def semantic_share(words: int, *, short: int = SHORT_WORDS) -> float:
    """The embeddings' full weight for a short item (an RSS title and description), less as the
    text grows: a long article's own words tell its event apart better than a sentence model
    that reads its first 256 tokens and finds every shooting report alike."""
    return min(1.0, short / max(words, 1))


LONG_JOIN = 0.21  # the join threshold of a long article
LONG_FROM, LONG_TO = 100, 400  # words: between these the join threshold eases to LONG_JOIN


def for_length(words: int, thresholds: Thresholds = THRESHOLDS) -> Thresholds:
    """The thresholds for an item of ``words`` words: two long reports of one event share a
    smaller part of their many terms than two short ones, so joining eases as texts grow (the
    confident threshold, which makes follow-ups, does not)."""
    ease = min(1.0, max(0.0, (words - LONG_FROM) / (LONG_TO - LONG_FROM)))
    floor = min(LONG_JOIN, thresholds.join)
    return Thresholds(thresholds.join - (thresholds.join - floor) * ease, thresholds.confident)


def semantic_for(words: int, *, lexical: Thresholds = THRESHOLDS) -> Semantic:
    """The weight and thresholds for an item of ``words`` words: both move from the semantic
    ones to the lexical ones as the share falls."""
    share = semantic_share(words)

    def between(a: float, b: float) -> float:
        return a + (b - a) * share

    return Semantic(
        SEMANTIC_WEIGHT * share,
        Thresholds(
            between(lexical.join, SEMANTIC_THRESHOLDS.join),
            between(lexical.confident, SEMANTIC_THRESHOLDS.confident),
        ),
    )


Embedding = Sequence[float]
"""A unit-length sentence embedding of an item (the optional semantic signal)."""

# --- what is compared ----------------------------------------------------------------------------

_AFFIX_SEPARATOR = re.compile(r"\s+(?:-|\||–|—|::|•)\s+")


def title_affixes(title: str) -> tuple[str, str] | None:
    """The first and last segments of a title cut by " - ", " | " and the like (site names live
    there: "… - WSMV Channel 4", "CBS 58 - …"), lower-cased; None for a title in one piece."""
    parts = _AFFIX_SEPARATOR.split(title.strip())
    if len(parts) < 2:
        return None
    return parts[0].strip().lower(), parts[-1].strip().lower()


def clean_title(title: str, recurring: Iterable[str]) -> str:
    """The title without a first or last segment the source keeps repeating (``recurring``:
    the lower-cased segments seen in the source's earlier titles)."""
    parts = _AFFIX_SEPARATOR.split(title.strip())
    if len(parts) < 2:
        return title.strip()
    known = set(recurring)
    kept = parts
    if kept[-1].strip().lower() in known:
        kept = kept[:-1]
    if len(kept) > 1 and kept[0].strip().lower() in known:
        kept = kept[1:]
    return title.strip() if kept is parts else " ".join(kept)


def evidence(
    title: str,
    text: str,
    *,
    text_tokens: Tokens | None = None,
    title_tokens: Tokens | None = None,
) -> dict[str, float]:
    """Each term of an article with the weight of where it stands: title words strongest, then
    the lead, names and numbers boosted, counts dampened by their logarithm. ``text`` is the
    plain text without boilerplate, or the text of ``text_tokens`` when they are given (its
    tokens outside boilerplate, offsets into ``text``); ``title_tokens`` the title's tokens."""
    tokens = text_tokens if text_tokens is not None else tokenize(text)
    heading = title_tokens if title_tokens is not None else tokenize(title)
    words = tokens.words
    counts: Counter[str] = Counter(words)  # counted in C; the lead and title add to it
    lead = Counter(words[:LEAD_WORDS])
    titled = Counter(heading.words)
    names = {
        words[index]
        for index, start in enumerate(tokens.starts)
        if index and text[start].isupper() and not _starts_sentence(text, start)
    }
    names.update(
        heading.words[index]
        for index, start in enumerate(heading.starts)
        if index and title[start].isupper()
    )
    weights: dict[str, float] = {}
    for word in counts.keys() | titled.keys():
        if len(word) < 2 and not word.isdigit():
            continue
        count = counts[word] + (LEAD_WEIGHT - 1.0) * lead[word] + TITLE_WEIGHT * titled[word]
        boost = NAME_BOOST if word in names else 1.0
        if not word.isalpha() and any(c.isdigit() for c in word):
            boost = NUMBER_BOOST if len(word) >= 3 else SHORT_NUMBER
        weights[word] = (1.0 + math.log(count)) * boost
    return weights


_ENDS = {".", "!", "?", ":", '"', "“", "”"}


def _starts_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` begins a sentence or a line (its capital says nothing)."""
    before = text[max(0, start - 2) : start]
    return "\n" in before or before.strip() in _ENDS


PRIORS_KEPT = 300_000  # words whose prior share is kept per language (then it starts again)
_PRIORS: dict[Background, dict[str, float]] = {}


def _priors(background: Background) -> dict[str, float]:
    """The prior shares found so far for ``background``'s language, by word."""
    known = _PRIORS.get(background)
    if known is None:
        known = _PRIORS[background] = {}
    return known


def prior_share(word: str, background: Background) -> float:
    """The share of ordinary documents that contain ``word``, from its frequency in the language."""
    known = _priors(background)
    share = known.get(word)
    if share is None:
        if len(known) >= PRIORS_KEPT:
            known.clear()
        per_word = 10 ** (background(word) - 9)
        share = known[word] = min(1.0, max(MIN_SHARE, 1.0 - math.exp(-PRIOR_WORDS * per_word)))
    return share


def counted(words: Iterable[str], background: Background) -> set[str]:
    """The words whose stream document frequency is worth keeping: not the language's commonest
    (their weight is their prior's, whatever the stream says)."""
    known = _priors(background)
    return {
        w for w in words if (known[w] if w in known else prior_share(w, background)) < STREAM_SHARE
    }


@dataclass(frozen=True, slots=True)
class StreamFrequency:
    """How many recent documents of one language there were, and how many contained each word."""

    documents: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class StoryTally:
    """What a batch adds to the stream's frequencies, counted item after item as each is
    placed: a new story is one more document holding all its counted words; an item that
    joins a story adds only the words its story did not hold yet. A word's frequency is thus
    how many recent *stories* hold it: thirty reports of one election count once, and a name
    found in fifteen unrelated stories (Biden) counts fifteen times."""

    documents: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, words: Iterable[str], *, story: bool) -> None:
        """Count ``words`` as newly held by a story (``story``: a new one, counted as well)."""
        self.counts.update(words)
        self.documents += int(story)


def new_to_story(own: Iterable[str], members: Iterable[Member]) -> set[str]:
    """The counted words an item brings to its story: ``own`` less the terms of the story's
    ``members`` it was compared with (a member's vector holds its strongest terms only, so a
    word the story held but no seen member ranked highly is counted again)."""
    held: set[str] = set()
    for member in members:
        held.update(member.vector)
    return set(own) - held


def idf(word: str, stream: StreamFrequency, background: Background) -> float:
    """Inverse document frequency over the recent stream, smoothed by the language prior."""
    prior = prior_share(word, background)
    share = (stream.counts.get(word, 0) + PRIOR_DOCS * prior) / (stream.documents + PRIOR_DOCS)
    return max(0.0, -math.log(min(1.0, share)))


@dataclass(frozen=True, slots=True)
class Weighing:
    """An item's evidence ready to be weighed, and weighed again as the batch before it is
    counted: each term with its evidence, its count as the stream stood before the batch (the
    language prior's share included) and the evidence times the count's logarithm; and the
    stream's documents then."""

    terms: Mapping[str, tuple[float, float, float]]  # term: (evidence, count, evidence × log)
    documents: float

    def common(self, share: float = COMMON_SHARE) -> frozenset[str]:
        """The terms at least ``share`` of the stream's stories hold (the prior counted)."""
        least = share * self.documents
        return frozenset(word for word, (_, count, _) in self.terms.items() if count >= least)

    def vector(self, tally: StoryTally | None = None, *, top: int = TOP_TERMS) -> dict[str, float]:
        """Evidence times stream rarity (with what ``tally`` counted since), the ``top``
        terms, L2-normalized, strongest first (ties: the first term in alphabetical order)."""
        documents, moved = self.documents, {}
        if tally is not None:
            documents += tally.documents
            added, log = tally.counts, math.log
            moved = {
                word: x * log(count + added[word])
                for word, (x, count, _) in self.terms.items()
                if word in added
            }
        total = math.log(documents)
        if moved:
            weighted = [
                (moved.get(word, xl) - x * total, word) for word, (x, _, xl) in self.terms.items()
            ]
        else:
            weighted = [(xl - x * total, word) for word, (x, _, xl) in self.terms.items()]
        strongest = [(-w, word) for w, word in heapq.nsmallest(top, weighted) if w < 0]
        length = math.sqrt(sum(w * w for w, _ in strongest))
        return {word: w / length for w, word in strongest} if length else {}


def weighing(
    terms: Mapping[str, float],
    stream: StreamFrequency,
    background: Background,
    own: Collection[str] | None = None,
) -> Weighing:
    """``terms`` (an item's evidence) with their counts in ``stream``; ``own``: the item's
    counted words, when the item counts as one more document of the stream holding them."""
    stored, mine, known = stream.counts, own if own is not None else (), _priors(background)
    log = math.log
    rows: dict[str, tuple[float, float, float]] = {}
    for word, x in terms.items():
        if x <= 0:
            continue
        prior = known[word] if word in known else prior_share(word, background)
        count = stored.get(word, 0) + PRIOR_DOCS * prior + (word in mine)
        rows[word] = (x, count, x * log(count))
    return Weighing(rows, stream.documents + PRIOR_DOCS + (own is not None))


def weigh(
    terms: Mapping[str, float],
    stream: StreamFrequency,
    background: Background,
    *,
    top: int = TOP_TERMS,
) -> dict[str, float]:
    """An item's vector: evidence times stream rarity, its ``top`` terms, L2-normalized,
    strongest first."""
    return weighing(terms, stream, background).vector(top=top)


def norm(vector: Mapping[str, float]) -> float:
    """A term vector's length."""
    return math.sqrt(sum(v * v for v in vector.values()))


def cosine(
    a: Mapping[str, float], b: Mapping[str, float], lengths: tuple[float, float] | None = None
) -> float:
    """Cosine similarity of two term vectors (either may be unnormalized); ``lengths``: their
    norms, when already known (an item is compared with many members)."""
    shared = a.keys() & b.keys()  # in C: two reports share few of their terms
    if not shared:
        return 0.0
    dot = sum(a[k] * b[k] for k in sorted(shared))
    if not dot:
        return 0.0
    na, nb = lengths if lengths is not None else (norm(a), norm(b))
    return dot / (na * nb)


def shared_terms(a: Mapping[str, float], b: Mapping[str, float]) -> list[tuple[str, float]]:
    """The terms two vectors share, with each one's part of their similarity, largest first."""
    parts = [(term, a[term] * b[term]) for term in a if term in b]
    return sorted(parts, key=lambda kv: (-kv[1], kv[0]))


def index_terms(vector: Mapping[str, float], common: Collection[str] = ()) -> list[str]:
    """The terms under which an item is found by later items: its strongest, but for those
    ``common`` in the stream (``Weighing.common``), which single out no event."""
    return [term for term in vector if term not in common][:INDEX_TERMS]


def query_terms(vector: Mapping[str, float], common: Collection[str] = ()) -> list[str]:
    """The terms under which an item looks for earlier items: more than it is indexed under,
    so two reports are compared when one's strongest terms are anywhere among the other's."""
    return [term for term in vector if term not in common][:QUERY_TERMS]


# --- deciding ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """An earlier item that might be the same article: its id, story and fingerprint."""

    item: str
    story: str
    fingerprint: Fingerprint


@dataclass(frozen=True, slots=True)
class Member:
    """An earlier item of a story as level 3 compares it: its vector as it was weighed."""

    item: str
    story: str
    vector: Mapping[str, float]
    fingerprint: Fingerprint | None = None
    embedding: Embedding | None = None
    length: float = field(init=False, default=0.0, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", norm(self.vector))


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an item goes: the item it duplicates (if any), its story (None: a new one), the
    earlier item it matched and how closely, and whether the tie is confident."""

    duplicate_of: str | None
    story: str | None
    similarity: float = 0.0
    matched: str | None = None
    confident: bool = True


def blended(lexical: float, a: Embedding | None, b: Embedding | None, weight: float) -> float:
    """The lexical similarity, blended with the embeddings' cosine when both items have one."""
    if a is None or b is None or not weight:
        return lexical
    semantic = sum(x * y for x, y in zip(a, b, strict=True))
    return (1.0 - weight) * lexical + weight * semantic


def similarities(
    vector: Mapping[str, float],
    members: Iterable[Member],
    *,
    embedding: Embedding | None = None,
    weight: float = 0.0,
) -> list[tuple[float, Member]]:
    """Each member with its similarity to ``vector`` (blended with ``embedding`` when given),
    most similar first (ties: earliest id)."""
    own = norm(vector)
    scored = [
        (blended(cosine(vector, m.vector, (own, m.length)), embedding, m.embedding, weight), m)
        for m in members
    ]
    return sorted(scored, key=lambda pair: (-pair[0], pair[1].item))


def story_match(scored: Sequence[tuple[float, Member]]) -> tuple[float, Member] | None:
    """The story an item matches best, with its score and the member that matched: a story's
    score is its best member's similarity less ``STORY_SPREAD`` of the gap to its second best
    (a story of one member seen scores its similarity). One member that happens to share a
    famous name with the item counts for less when the story's other members do not agree:
    that is how unrelated events chain into one story. ``scored``: most similar first."""
    first: dict[str, tuple[float, Member]] = {}
    second: dict[str, float] = {}
    for score, member in scored:
        if member.story not in first:
            first[member.story] = (score, member)
        elif member.story not in second:
            second[member.story] = score
    best: tuple[float, Member] | None = None
    for story, (score, member) in first.items():
        value = score - STORY_SPREAD * (score - second.get(story, score))
        if best is None or value > best[0]:
            best = (value, member)
    return best


def decide(
    fingerprint: Fingerprint,
    vector: Mapping[str, float],
    known: Iterable[Known],
    members: Sequence[Member],
    *,
    thresholds: Thresholds = THRESHOLDS,
    embedding: Embedding | None = None,
    weight: float = 0.0,
) -> Decision:
    """Level 2 first (the most similar duplicate wins), then level 3: the story matched best
    (``story_match``), when it matches well enough.

    Duplicates are looked for among ``known`` (items sharing a band of the fingerprint) and the
    members close enough to join: a teaser shares few shingles with its full text, but its
    subject. With ``embedding`` (the semantic extra), similarities blend in the embeddings'
    cosine with ``weight``."""
    scored = similarities(vector, members, embedding=embedding, weight=weight)
    close = [
        Known(m.item, m.story, m.fingerprint)
        for score, m in scored
        if score >= thresholds.join and m.fingerprint is not None
    ]
    duplicates = [k for k in [*known, *close] if is_duplicate(fingerprint, k.fingerprint)]
    if duplicates:
        copy = max(duplicates, key=lambda k: (jaccard(fingerprint, k.fingerprint), k.item))
        return Decision(copy.item, copy.story, jaccard(fingerprint, copy.fingerprint), copy.item)
    best = story_match(scored)
    if best and best[0] >= thresholds.join:
        similarity, member = best
        return Decision(
            None,
            member.story,
            similarity,
            member.item,
            confident=similarity >= thresholds.confident,
        )
    return Decision(None, None)
