"""The recent items, kept compact for trying rules on what already came in.

The items stream is a queue: its entries leave once every consumer group has acknowledged them
(``Stream.ack`` trims them), so it cannot answer "what would this rule have matched yesterday".
The history can: the process role appends each new item to a stream of its own in the
pipeline that acknowledges its batch (no round trip of its own), as zlib-compressed JSON with
the text cut at ``TEXT_CHARS``; entries older than the history's length go at each append
(``MINID``), and a cap on their number bounds it whatever the rate. ``monitor rules test
--since`` and ``monitor rules backfill`` read it.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from monitor.models import Item
from monitor.store.commands import translated

TEXT_CHARS = 20_000  # an item's text is kept up to this many characters
PAGE = 500  # entries read per XRANGE call


@dataclass(frozen=True, slots=True)
class Recent:
    """An item as the history kept it, with where placement put it."""

    item: Item
    story: str
    duplicate_of: str | None
    seen: float  # when the process role took it (seconds since the epoch)
    confident: bool = True  # its tie to the story was sure enough for a follow-up


def pack(item: Item, story: str, duplicate_of: str | None, confident: bool = True) -> str:
    """One history entry's data: the item and its placement, compressed."""
    data = item.to_dict()
    data["text"] = item.text[:TEXT_CHARS]
    payload = {
        "item": data,
        "story": story,
        "duplicate_of": duplicate_of,
        "confident": confident,
    }
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode()


def unpack(data: str, entry_id: str) -> Recent:
    """A history entry back; ValueError (or KeyError, TypeError) when it is not one."""
    payload: Any = json.loads(zlib.decompress(base64.b64decode(data)))
    return Recent(
        Item.from_dict(payload["item"]),
        str(payload["story"]),
        payload.get("duplicate_of") or None,
        int(entry_id.split("-", 1)[0]) / 1000,
        bool(payload.get("confident", True)),
    )


class History:
    """The history stream at ``key``: ``keep_s`` seconds of items, at most ``cap`` of them."""

    def __init__(self, client: Redis, key: str, keep_s: int, cap: int) -> None:
        self.client = client
        self.key = key
        self.keep_s = keep_s
        self.cap = cap

    def oldest(self, now: float) -> str:
        """The stream id before which entries have fallen out of the history at ``now``: each
        append (``finishing.FINISH``, ``XADD … MINID``, exact, so the history says how far back
        it reaches) drops them; the count is capped approximately after (``XTRIM MAXLEN ~``)."""
        return f"{max(0, int((now - self.keep_s) * 1000))}-0"

    async def since(self, start: float, problems: list[str] | None = None) -> list[Recent]:
        """The items the history kept from ``start`` (seconds since the epoch) on, oldest
        first; an entry that cannot be read is left out and named in ``problems``."""
        found: list[Recent] = []
        low = f"{max(0, int(start * 1000))}-0"
        while True:
            with translated(f"XRANGE {self.key}"):
                page: Any = await self.client.xrange(self.key, min=low, count=PAGE)
            for entry, fields in page:
                try:
                    found.append(unpack(fields["d"], entry))
                except (ValueError, KeyError, TypeError, zlib.error) as exc:
                    if problems is not None:
                        problems.append(f"history entry {entry}: {exc}")
            if len(page) < PAGE:
                return found
            low = f"({page[-1][0]}"

    async def reach(self) -> tuple[int, float | None]:
        """How many items the history holds and when its oldest one came in."""
        with translated(f"XINFO STREAM {self.key}"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xlen(self.key)
                pipe.xrange(self.key, count=1)
                length, first = await pipe.execute()
        if not first:
            return int(length), None
        return int(length), int(str(first[0][0]).split("-", 1)[0]) / 1000
