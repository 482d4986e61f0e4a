"""Explaining and correcting stories on real Redis: --explain, split, merge; later items
respect a correction; a loose tie alerts; each rule's follow-up policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.core.rules import build_config
from monitor.core.stories import Thresholds
from monitor.models import Item
from monitor.roles.process import Processed, Processor, Runtime
from monitor.store import Store
from monitor.store.stories import StoryKeeper
from monitor.store.story_book import StoryBook
from monitor.store.streams import item_entry
from tests.factories import make_item

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()

QUAKE = [
    make_item(
        "quake-1",
        source="wire",
        title="Magnitude 6.4 earthquake strikes near Lima, Peru",
        text="A magnitude 6.4 earthquake struck near Lima, Peru, on Monday, officials said. "
        "Buildings swayed in Lima and Callao; no deaths were reported.",
    ),
    make_item(
        "quake-2",
        source="daily",
        title="Lima earthquake: Callao buildings damaged after 6.4 quake",
        text="Several buildings in Callao were damaged after the 6.4 earthquake near Lima, Peru. "
        "Officials in Lima said rescuers were checking homes.",
    ),
]
BUDGET = make_item(
    "budget-1",
    source="capitol",
    title="Senate passes the farm budget bill",
    text="The Senate passed the farm budget bill on Monday after a long debate over subsidies.",
)
LATER = make_item(
    "quake-3",
    source="radio",
    title="Callao damage from Lima earthquake assessed",
    text="Engineers assessed the damage in Callao from the 6.4 earthquake near Lima, Peru.",
)


async def test_explain_names_the_matched_member_and_the_shared_terms(store: Store) -> None:
    keeper, book = StoryKeeper(store), StoryBook(store)
    placed = await keeper.place([*QUAKE, BUDGET], NOW)
    assert placed[1].story == placed[0].story != placed[2].story
    joined = await book.explain(placed[0].story)
    assert [j["id"] for j in joined] == ["quake-1", "quake-2"]
    assert joined[0]["how"] == "first report"
    second = joined[1]
    assert second["how"] == "matched" and second["matched"] == "quake-1"
    assert second["matched_title"] == QUAKE[0].title
    assert second["similarity"] == placed[1].similarity > 0
    terms = [term for term, _ in second["shared"]]
    assert "lima" in terms and "callao" in terms
    parts = [part for _, part in second["shared"]]
    assert parts == sorted(parts, reverse=True)


async def test_a_split_item_stands_alone_and_later_items_follow_it(store: Store) -> None:
    keeper, book = StoryKeeper(store), StoryBook(store)
    placed = await keeper.place(QUAKE, NOW)
    old, new = await book.split("quake-2")
    assert old == placed[0].story and new != old
    assert [j["id"] for j in await book.explain(old)] == ["quake-1"]
    assert [j["id"] for j in await book.explain(new)] == ["quake-2"]
    # A later report closest to the split item joins the split item's story.
    [later] = await keeper.place([LATER], NOW + 60)
    assert later.matched == "quake-2" and later.story == new
    stories = {s["id"]: s for s in await book.recent()}
    assert stories[new]["items"] == 2 and stories[old]["items"] == 1


async def test_a_merge_moves_every_item_and_later_items_follow(store: Store) -> None:
    keeper, book = StoryKeeper(store), StoryBook(store)
    first, budget = await keeper.place([QUAKE[0], BUDGET], NOW)
    assert first.story != budget.story
    assert await book.merge(first.story, budget.story) == 1
    stories = {s["id"]: s for s in await book.recent()}
    assert budget.story not in stories
    assert {m["id"] for m in stories[first.story]["members"]} == {"quake-1", "budget-1"}
    assert stories[first.story]["sources"] == ["capitol", "wire"]
    follow = make_item(
        "budget-2",
        source="farm",
        title="Farm budget bill passes the Senate",
        text="The farm budget bill passed the Senate on Monday; subsidies were debated for days.",
    )
    [placed] = await keeper.place([follow], NOW + 60)
    assert placed.matched == "budget-1" and placed.story == first.story


async def test_corrections_of_unknown_items_and_stories_fail_clearly(store: Store) -> None:
    book = StoryBook(store)
    with pytest.raises(Exception, match="no item 'nope'"):
        await book.split("nope")
    with pytest.raises(Exception, match="no story"):
        await book.merge("a", "b")
    with pytest.raises(Exception, match="no story 'x'"):
        await book.explain("x")


RULES = """
rules:
  - {id: thread, query: 'earthquake OR quake'}
  - {id: alert, query: 'earthquake OR quake', followups: alert}
  - {id: silent, query: 'earthquake OR quake', followups: off}
"""


async def process(store: Store, processor: Processor, items: list[Item]) -> Processed:
    await store.items.add_many([item_entry(item) for item in items])
    return await processor.handle(await store.items.read("process", "worker", 1000))


def processor_for(store: Store, thresholds: Thresholds) -> Processor:
    runtime = Runtime.build(build_config([("rules.yaml", RULES)], {}))
    keeper = StoryKeeper(store, thresholds=thresholds)
    return Processor(store, lambda: runtime, keeper, clock=lambda: NOW)


async def test_each_rule_follows_up_as_it_says(store: Store) -> None:
    processor = processor_for(store, Thresholds(join=0.1, confident=0.1))
    await processor.start()
    result = await process(store, processor, QUAKE)
    by_rule = {
        rule: [(a.item.id, a.followup, a.related) for a in result.alerts if a.rule == rule]
        for rule in ("thread", "alert", "silent")
    }
    story = result.placements[0][1].story
    assert by_rule["thread"] == [("quake-1", False, None), ("quake-2", True, None)]
    assert by_rule["alert"] == [("quake-1", False, None), ("quake-2", False, story)]
    assert by_rule["silent"] == [("quake-1", False, None)]


async def test_a_loose_tie_alerts_as_its_own_story_naming_the_one_it_may_belong_to(
    store: Store,
) -> None:
    processor = processor_for(store, Thresholds(join=0.1, confident=0.99))
    await processor.start()
    result = await process(store, processor, QUAKE)
    placed = result.placements[1][1]
    assert not placed.confident and placed.story == result.placements[0][1].story
    second = [a for a in result.alerts if a.rule == "thread" and a.item.id == "quake-2"]
    assert len(second) == 1
    alert = second[0]
    assert not alert.followup and alert.story != placed.story
    assert alert.related == placed.story and alert.related_title == QUAKE[0].title


def topic_embedder(texts: list[str]) -> list[tuple[float, float]]:
    """A stand-in sentence model with two topics: earthquakes and budgets (unit vectors)."""
    return [
        (1.0, 0.0) if "quake" in t.lower() or "tremor" in t.lower() else (0.0, 1.0) for t in texts
    ]


async def test_the_keeper_stores_embeddings_and_blends_them(store: Store) -> None:
    keeper = StoryKeeper(store, embed=topic_embedder)  # type: ignore[arg-type]
    tremor = make_item(
        "tremor-1",
        source="tv",
        title="Tremor rattles residents",
        text="Residents ran into the streets as the ground shook for forty seconds; windows "
        "cracked, dogs barked and neighbours gathered in parks until the shaking stopped. "
        "In Lima, families stayed outdoors.",
    )
    first, _ = await keeper.place([QUAKE[0], BUDGET], NOW)
    [placed] = await keeper.place([tremor], NOW + 60)
    # The words barely overlap; the embeddings, read back from Redis, tie it to the quake.
    assert placed.story == first.story and placed.matched == "quake-1"
    lexical = await StoryKeeper(Store(store.client, prefix="lexical:")).place(
        [QUAKE[0], BUDGET, tremor], NOW
    )
    assert lexical[2].story not in {lexical[0].story, lexical[1].story}


async def test_scripts_redis_forgot_after_a_restart_are_loaded_again(store: Store) -> None:
    keeper = StoryKeeper(store)
    [first] = await keeper.place([QUAKE[0]], NOW)
    await store.client.script_flush()  # what a restart does to the script cache
    [second] = await keeper.place([QUAKE[1]], NOW + 60)
    assert second.story == first.story and second.matched == "quake-1"
    # The rerun script calls took effect once: each band holds the item once, lines count once.
    joined = await StoryBook(store).explain(first.story)
    assert [j["id"] for j in joined] == ["quake-1", "quake-2"]
