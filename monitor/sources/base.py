"""The one-method protocol every source implements, and what a fetch returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from monitor.errors import FetchErrorKind
from monitor.models import Item


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one fetch of one source; errors are values, never exceptions.

    ``error`` means the fetch failed as a whole (``error_kind`` says why, in one word);
    ``problems`` are entries (files, feed entries) that were skipped while the rest went through.
    ``state`` is what the source wants kept for its next fetch (ETag, Last-Modified, cursors); an
    empty string value means "no longer set".

    The HTTP sources also say how the fetch went, for the scheduler and ``sources check``:
    ``status`` (the final HTTP status, None when no response came), ``not_modified`` (a 304:
    nothing was parsed), ``retry_after_s`` (the server's Retry-After, seconds from now),
    ``max_age_s`` (Cache-Control max-age), ``bozo`` (why a feed was malformed yet readable),
    ``bytes_read`` (decompressed body bytes) and ``elapsed_s`` (wall time of the fetch).
    """

    source: str
    items: tuple[Item, ...] = ()
    error: str | None = None
    error_kind: FetchErrorKind | None = None
    problems: tuple[str, ...] = ()
    state: Mapping[str, str] = field(default_factory=dict)
    status: int | None = None
    not_modified: bool = False
    retry_after_s: float | None = None
    max_age_s: float | None = None
    bozo: str | None = None
    bytes_read: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Source(Protocol):
    """A place items come from: a replayed directory, a feed, a wire service."""

    @property
    def id(self) -> str: ...

    async def fetch(self, state: Mapping[str, str]) -> FetchResult: ...
