"""``monitor stories``: the stories that grew most recently."""

from __future__ import annotations

from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server, story_keeper
from monitor.store.stories import StorySummary

__all__ = ["recent_stories"]


async def recent_stories(settings: Settings, limit: int) -> list[StorySummary]:
    """The stories in the configured store that grew most recently, newest first."""
    async with redis_server(settings) as client:
        return await story_keeper(open_store(client, settings), settings).recent(limit)
