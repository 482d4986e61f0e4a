"""``monitor stories``: the recent stories, why each member joined, and corrections."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server, story_book
from monitor.store.story_book import Joined, StoryBook, StorySummary

__all__ = [
    "explain_story",
    "explanation_lines",
    "merge_stories",
    "printable",
    "recent_stories",
    "split_item",
    "story_lines",
]


def _book(client: Any, settings: Settings) -> StoryBook:
    return story_book(open_store(client, settings), settings)


async def recent_stories(settings: Settings, limit: int) -> list[StorySummary]:
    """The stories in the configured store that grew most recently, newest first."""
    async with redis_server(settings) as client:
        return await _book(client, settings).recent(limit)


async def explain_story(settings: Settings, story: str) -> list[Joined]:
    """Each member of ``story`` with the item it matched and the terms they share."""
    async with redis_server(settings) as client:
        return await _book(client, settings).explain(story)


async def split_item(settings: Settings, item: str) -> tuple[str, str]:
    """Move ``item`` to a story of its own: (the story it left, its new story)."""
    async with redis_server(settings) as client:
        return await _book(client, settings).split(item)


async def merge_stories(settings: Settings, into: str, other: str) -> int:
    """Move every item of ``other`` into ``into``: how many moved."""
    async with redis_server(settings) as client:
        return await _book(client, settings).merge(into, other)


def printable(text: str) -> str:
    """Feed text for the terminal: control and format characters (escape sequences, bidi
    overrides, line breaks) become spaces."""
    return "".join(c if c.isprintable() else " " for c in text)


def explanation_lines(member: Joined) -> list[str]:
    """How ``monitor stories --explain`` shows one member."""
    lines = [f"{member['id']}  {printable(member['source'])}: {printable(member['title'])}"]
    if member["how"] == "matched":
        sure = "confident" if member["confident"] else "loose: its rule matches alerted"
        lines.append(
            f"    joined: matched {member['matched']} at {member['similarity']:.3f} ({sure})"
            f": {printable(member['matched_title'] or '')}"
        )
        shared = ", ".join(f"{term} {part:.3f}" for term, part in member["shared"])
        lines.append(f"    shared terms: {shared or '(none kept)'}")
    elif member["how"] == "duplicate":
        lines.append(f"    joined: duplicate of {member['matched']} ({member['similarity']:.2f})")
    else:
        lines.append(f"    joined: {member['how']}")
    return lines


def story_lines(story: StorySummary) -> list[str]:
    """How ``monitor stories`` shows one story: a line for it, an indented one per member."""
    first = datetime.fromisoformat(story["first_seen"]).strftime("%Y-%m-%d %H:%M")
    last = datetime.fromisoformat(story["last_seen"]).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"{story['id']}  {story['items']} items ({story['duplicates']} duplicates), "
        f"{len(story['sources'])} sources, {first} → {last} UTC: {printable(story['title'])}"
    ]
    for member in story["members"]:
        mark = f"  = duplicate of {member['duplicate_of']}" if member["duplicate_of"] else ""
        lines.append(f"    {printable(member['source'])}: {printable(member['title'])}{mark}")
    return lines
