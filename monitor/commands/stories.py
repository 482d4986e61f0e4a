"""``monitor stories``: the recent stories, why each member joined, and corrections."""

from __future__ import annotations

from typing import Any

from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server, story_book
from monitor.store.story_book import Joined, StoryBook, StorySummary

__all__ = ["explain_story", "merge_stories", "recent_stories", "split_item"]


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
