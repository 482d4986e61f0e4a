"""The one-method protocol every source implements, and what a fetch returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from monitor.models import Item


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one fetch of one source; errors are values, never exceptions.

    ``error`` means the fetch failed as a whole; ``problems`` are entries (files, feed entries)
    that were skipped while the rest went through. ``state`` is what the source wants kept for
    its next fetch (ETag, Last-Modified, cursors).
    """

    source: str
    items: tuple[Item, ...] = ()
    error: str | None = None
    problems: tuple[str, ...] = ()
    state: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class Source(Protocol):
    """A place items come from: a replayed directory, a feed, a wire service."""

    @property
    def id(self) -> str: ...

    async def fetch(self, state: Mapping[str, str]) -> FetchResult: ...
