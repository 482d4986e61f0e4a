"""Level 3 scoring without I/O: stream frequency weighting, member matching, thresholds."""

from __future__ import annotations

import pytest

from monitor.core.dedup import fingerprint
from monitor.core.stories import (
    LONG_FROM,
    LONG_JOIN,
    LONG_TO,
    SEMANTIC_THRESHOLDS,
    SEMANTIC_WEIGHT,
    SHORT_WORDS,
    STORY_SPREAD,
    THRESHOLDS,
    Member,
    StoryTally,
    StreamFrequency,
    Thresholds,
    blended,
    clean_title,
    cosine,
    decide,
    evidence,
    for_length,
    idf,
    index_terms,
    new_to_story,
    query_terms,
    semantic_for,
    story_match,
    title_affixes,
    weigh,
    weighing,
)


def flat(word: str) -> float:
    """A language in which every word is equally rare (Zipf 2)."""
    return 2.0


def test_a_word_common_in_the_stream_weighs_less_than_one_rare_in_it() -> None:
    stream = StreamFrequency(100, {"biden": 40, "kentucky": 2})
    assert idf("biden", stream, flat) < idf("kentucky", stream, flat)
    # Without a stream, the language prior alone decides: equally rare words weigh the same.
    assert idf("biden", StreamFrequency(), flat) == idf("kentucky", StreamFrequency(), flat)


@pytest.mark.parametrize(
    ("documents", "count", "lower_than_prior"),
    [(0, 0, False), (10, 0, False), (300, 150, True), (3000, 1500, True)],
)
def test_the_stream_overrides_the_prior_as_it_grows(
    documents: int, count: int, lower_than_prior: bool
) -> None:
    prior = idf("gaza", StreamFrequency(), flat)
    seen = idf("gaza", StreamFrequency(documents, {"gaza": count}), flat)
    assert (seen < prior - 0.5) is lower_than_prior


def test_a_story_counts_once_however_many_reports_it_has() -> None:
    """Stream frequency is counted per story: a new story adds one document holding all its
    words; a report joining it adds only the words its story did not hold."""
    tally = StoryTally()
    tally.add({"ankara", "erdogan", "runoff"}, story=True)
    tally.add(new_to_story({"ankara", "erdogan", "runoff", "kilicdaroglu"}, []), story=False)
    assert tally.documents == 1
    assert dict(tally.counts) == {"ankara": 2, "erdogan": 2, "runoff": 2, "kilicdaroglu": 1}
    held = [Member("a", "s", {"ankara": 0.5, "erdogan": 0.5, "runoff": 0.7})]
    tally = StoryTally()
    tally.add({"ankara", "erdogan", "runoff"}, story=True)
    tally.add(new_to_story({"ankara", "erdogan", "runoff", "kilicdaroglu"}, held), story=False)
    assert dict(tally.counts) == {"ankara": 1, "erdogan": 1, "runoff": 1, "kilicdaroglu": 1}
    # A name in three unrelated stories counts three times.
    for words in ({"biden", "debt"}, {"biden", "ukraine"}, {"biden", "border"}):
        tally.add(words, story=True)
    assert (tally.documents, tally.counts["biden"]) == (4, 3)


@pytest.mark.parametrize(
    ("stored", "added", "own", "expected"),
    [
        # the item itself is one more document, holding its own counted words
        (StreamFrequency(), {}, {"gaza"}, StreamFrequency(1, {"gaza": 1})),
        (StreamFrequency(10, {"gaza": 4}), {}, set(), StreamFrequency(11, {"gaza": 4})),
        # the batch's stories so far are counted with the stored ones
        (
            StreamFrequency(10, {"gaza": 4}),
            {"gaza": 2},
            {"gaza"},
            StreamFrequency(13, {"gaza": 7}),
        ),
        (StreamFrequency(10, {"lima": 4}), {"lima": 1}, set(), StreamFrequency(12, {"lima": 5})),
    ],
)
def test_an_item_is_weighed_with_the_stored_the_batch_and_its_own_counts(
    stored: StreamFrequency,
    added: dict[str, int],
    own: set[str],
    expected: StreamFrequency,
) -> None:
    tally = StoryTally()
    for word, count in added.items():
        for _ in range(count):
            tally.add({word}, story=True)
    terms = {"gaza": 2.0, "lima": 1.5, "quake": 1.0}
    again = weighing(terms, stored, flat, own).vector(tally)
    assert again == pytest.approx(weigh(terms, expected, flat))
    assert weighing(terms, stored, flat).vector() == pytest.approx(weigh(terms, stored, flat))


def test_weighing_keeps_the_strongest_terms_ties_alphabetical() -> None:
    terms = {"delta": 1.0, "alpha": 1.0, "charlie": 1.0, "bravo": 2.0}
    vector = weighing(terms, StreamFrequency(), flat).vector(top=3)
    assert list(vector) == ["bravo", "alpha", "charlie"]
    assert sum(v * v for v in vector.values()) == pytest.approx(1.0)


def test_title_words_outweigh_body_words() -> None:
    terms = evidence("Quake hits Lima", "Officials counted damage. " * 3 + "A quake was felt.")
    assert terms["lima"] > terms["damage"]
    assert terms["quake"] > terms["officials"]


@pytest.mark.parametrize(
    ("title", "recurring", "expected"),
    [
        ("Teen shot in Memphis - WMC Action News 5", ["wmc action news 5"], "Teen shot in Memphis"),
        ("CBS 58 - Mother speaks out", ["cbs 58"], "Mother speaks out"),
        (
            "Teen shot in Memphis - WMC Action News 5",
            [],
            "Teen shot in Memphis - WMC Action News 5",
        ),
        ("One piece title", ["one piece title"], "One piece title"),
    ],
)
def test_recurring_title_affixes_are_removed(
    title: str, recurring: list[str], expected: str
) -> None:
    assert clean_title(title, recurring) == expected


def test_title_affixes_are_the_first_and_last_segments() -> None:
    assert title_affixes("A | B | C") == ("a", "c")
    assert title_affixes("No separator here") is None


def vector(stream: StreamFrequency, title: str, text: str) -> dict[str, float]:
    return weigh(evidence(title, text), stream, flat)


def member(item: str, story: str, title: str, text: str) -> Member:
    return Member(item, story, vector(StreamFrequency(), title, text))


def test_an_item_joins_the_story_of_its_best_matching_member() -> None:
    members = [
        member("a1", "story-a", "Earthquake hits Lima", "A magnitude 6.4 quake shook Lima."),
        member("b1", "story-b", "Senate passes budget", "The Senate passed the budget bill."),
    ]
    new = vector(StreamFrequency(), "Lima earthquake toll rises", "The quake in Lima killed 12.")
    empty = fingerprint("")
    decision = decide(empty, new, [], members)
    assert (decision.story, decision.matched) == ("story-a", "a1")
    assert decision.similarity == pytest.approx(cosine(new, members[0].vector))


@pytest.mark.parametrize(
    ("join", "confident", "story", "is_confident"),
    [(0.1, 0.2, "s", True), (0.1, 0.99, "s", False), (0.99, 0.99, None, True)],
)
def test_thresholds_decide_joining_and_confidence(
    join: float, confident: float, story: str | None, is_confident: bool
) -> None:
    old = member("x", "s", "Lima earthquake", "A quake shook Lima, Peru.")
    new = vector(StreamFrequency(), "Earthquake in Lima", "Lima, Peru, was shaken by a quake.")
    decision = decide(fingerprint(""), new, [], [old], thresholds=Thresholds(join, confident))
    assert decision.story == story
    assert decision.confident is is_confident


def test_a_story_keeps_the_identity_of_its_first_reports() -> None:
    """A story that drifted (its later member is about something else) is not joined through a
    sum of its members: only a member that itself matches counts."""
    first = member("a1", "s", "Lima earthquake kills 12", "A quake shook Lima, killing 12.")
    drift = member("a2", "s", "Peru election runoff set", "Peru votes in a runoff in June.")
    new = vector(StreamFrequency(), "Peru runoff date", "The runoff vote in Peru is in June.")
    decision = decide(fingerprint(""), new, [], [first, drift])
    assert decision.matched == "a2"  # it matched the member it resembles, not a blend
    alone = decide(fingerprint(""), new, [], [first])
    assert alone.story is None


def test_a_duplicate_found_among_close_members_wins_over_the_story() -> None:
    text = " ".join(f"word{i}" for i in range(80))
    fp = fingerprint(text)
    old = Member("old", "s", vector(StreamFrequency(), "Same", text), fp)
    decision = decide(fp, vector(StreamFrequency(), "Same", text), [], [old])
    assert (decision.duplicate_of, decision.story) == ("old", "s")


@pytest.mark.parametrize(
    ("lexical", "a", "b", "weight", "expected"),
    [
        (0.2, (1.0, 0.0), (1.0, 0.0), 0.5, 0.6),
        (0.2, (1.0, 0.0), (0.0, 1.0), 0.5, 0.1),
        (0.2, None, (1.0, 0.0), 0.5, 0.2),  # an item without an embedding: lexical alone
        (0.2, (1.0, 0.0), (1.0, 0.0), 0.0, 0.2),
    ],
)
def test_embeddings_blend_into_the_similarity(
    lexical: float,
    a: tuple[float, ...] | None,
    b: tuple[float, ...] | None,
    weight: float,
    expected: float,
) -> None:
    assert blended(lexical, a, b, weight) == pytest.approx(expected)


def test_embeddings_can_tie_reports_that_share_few_words() -> None:
    old = Member(
        "x",
        "s",
        vector(StreamFrequency(), "Lima quake", "A quake shook Lima."),
        embedding=(1.0, 0.0),
    )
    new = vector(StreamFrequency(), "Peru tremor", "Buildings swayed in Peru's capital.")
    lexical = decide(fingerprint(""), new, [], [old])
    assert lexical.story is None
    semantic = decide(fingerprint(""), new, [], [old], embedding=(1.0, 0.0), weight=0.6)
    assert semantic.story == "s" and semantic.similarity >= 0.6


@pytest.mark.parametrize(
    ("words", "weight", "join"),
    [
        (20, SEMANTIC_WEIGHT, SEMANTIC_THRESHOLDS.join),  # an RSS entry: the embedding counts fully
        (SHORT_WORDS, SEMANTIC_WEIGHT, SEMANTIC_THRESHOLDS.join),
        (2 * SHORT_WORDS, SEMANTIC_WEIGHT / 2, (THRESHOLDS.join + SEMANTIC_THRESHOLDS.join) / 2),
        (100 * SHORT_WORDS, SEMANTIC_WEIGHT / 100, None),  # a long article: nearly lexical
    ],
)
def test_the_embeddings_count_less_as_the_text_grows(
    words: int, weight: float, join: float | None
) -> None:
    semantic = semantic_for(words)
    assert semantic.weight == pytest.approx(weight)
    if join is not None:
        assert semantic.thresholds.join == pytest.approx(join)
    else:
        assert semantic.thresholds.join == pytest.approx(THRESHOLDS.join, abs=0.01)


@pytest.mark.parametrize(
    ("words", "join"),
    [(30, THRESHOLDS.join), (LONG_FROM, THRESHOLDS.join), (LONG_TO, LONG_JOIN), (2000, LONG_JOIN)],
)
def test_joining_eases_for_long_articles_and_confidence_does_not(words: int, join: float) -> None:
    thresholds = for_length(words)
    assert thresholds.join == pytest.approx(join)
    assert thresholds.confident == THRESHOLDS.confident


def test_a_stricter_join_than_the_long_one_is_never_raised() -> None:
    assert for_length(2000, Thresholds(join=0.1, confident=0.2)).join == 0.1


@pytest.mark.parametrize(
    ("stories", "held_by", "common"),
    [
        (1000, {"gaza": 200, "lima": 5}, {"gaza"}),  # a fifth of recent stories: no index term
        (1000, {"gaza": 20, "lima": 5}, set()),  # 2%: still singles out an event
        (0, {}, set()),  # an empty stream: the prior alone, and these words are rare
    ],
)
def test_terms_many_recent_stories_hold_are_common(
    stories: int, held_by: dict[str, int], common: set[str]
) -> None:
    weighed = weighing({"gaza": 2.0, "lima": 1.0}, StreamFrequency(stories, held_by), flat)
    assert weighed.common() == common
    vector = weighed.vector()
    assert index_terms(vector, weighed.common()) == [t for t in vector if t not in common]
    assert query_terms(vector, weighed.common()) == [t for t in vector if t not in common]


def test_an_item_looks_up_more_terms_than_it_is_indexed_under() -> None:
    vector = {f"t{i}": 1.0 for i in range(60)}
    assert index_terms(vector) == query_terms(vector)[: len(index_terms(vector))]
    assert len(query_terms(vector)) > len(index_terms(vector))


def scored(*pairs: tuple[float, str]) -> list[tuple[float, Member]]:
    members = [Member(f"i{n}", story, {"x": 1.0}) for n, (_, story) in enumerate(pairs)]
    return sorted(zip([p[0] for p in pairs], members, strict=True), key=lambda p: -p[0])


@pytest.mark.parametrize(
    ("pairs", "story", "score"),
    [
        # one member seen: the story scores its similarity
        ([(0.5, "a")], "a", 0.5),
        # a second member that agrees keeps the score
        ([(0.5, "a"), (0.5, "a")], "a", 0.5),
        # one member sharing a famous name, the rest of its story not: tempered
        ([(0.5, "a"), (0.1, "a")], "a", 0.5 - STORY_SPREAD * 0.4),
        # so a story whose members agree wins over a higher single match in a disagreeing one
        ([(0.5, "a"), (0.1, "a"), (0.4, "b"), (0.38, "b")], "b", 0.4 - STORY_SPREAD * 0.02),
        # only the two best members of a story count
        ([(0.5, "a"), (0.45, "a"), (0.0, "a")], "a", 0.5 - STORY_SPREAD * 0.05),
    ],
)
def test_a_story_scores_its_best_member_tempered_by_its_second(
    pairs: list[tuple[float, str]], story: str, score: float
) -> None:
    match = story_match(scored(*pairs))
    assert match is not None
    assert match[1].story == story
    assert match[0] == pytest.approx(score)


def test_an_item_does_not_join_a_story_through_one_member_its_others_contradict() -> None:
    fp = fingerprint(["nothing", "in", "common", "with", "the", "members"])
    one = {"biden": 0.6, "debt": 0.8}
    members = [
        Member("m1", "s", {"biden": 0.6, "debt": 0.8}),  # similarity 1.0
        Member("m2", "s", {"biden": 0.1, "ukraine": 0.99}),  # similarity 0.06
    ]
    alone = decide(fp, one, [], members[:1], thresholds=Thresholds(join=0.7, confident=0.9))
    assert alone.story == "s"
    both = decide(fp, one, [], members, thresholds=Thresholds(join=0.7, confident=0.9))
    assert both.story is None
