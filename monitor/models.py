"""The frozen types that flow through newsmonitor: Item → RuleMatch → Alert."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

Severity = Literal["low", "normal", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "normal", "high", "critical")
FIELDS: tuple[str, ...] = ("title", "text", "url", "source", "author")


# Characters a feed must not get onto a terminal or into a message: C0 controls but tab and
# line feed (ESC starts terminal escape sequences), DEL, C1 controls, and the bidirectional
# embeddings, overrides and isolates that make text read in another order than it is.
_INVISIBLE = {
    code: None
    for code in (
        *range(0x00, 0x09),
        0x0B,
        0x0C,
        *range(0x0E, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0x061C,
    )
}


_ANY_INVISIBLE = re.compile("[" + "".join(re.escape(chr(code)) for code in _INVISIBLE) + "]")


def shown(text: str) -> str:
    """Feed text as it may be shown anywhere: line breaks normalized to ``\n``, control and
    bidirectional-override characters removed (see ``_INVISIBLE``)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Most texts hold none: a scan in C says so, instead of a lookup per character.
    return text.translate(_INVISIBLE) if _ANY_INVISIBLE.search(text) else text


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Item:
    """One article from one source, as read; the unit that is matched and deduplicated."""

    id: str
    source: str
    title: str
    text: str
    url: str | None = None
    published: datetime | None = None
    guid: str | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    language: str | None = None
    path: str | None = None
    shared_url: bool = False
    """Other entries of the same feed document carry this link too (a podcast's or a live
    page's home page): the link is shown, but it does not identify the entry."""

    def __post_init__(self) -> None:
        # Whatever a source sent, what flows on is safe to show anywhere (``shown``).
        for name in ("title", "text", "source", "url"):
            value = getattr(self, name)
            if value and (cleaned := shown(value)) != value:
                object.__setattr__(self, name, cleaned)
        if any(shown(author) != author for author in self.authors):
            object.__setattr__(self, "authors", tuple(shown(a) for a in self.authors))

    def field(self, name: str) -> str:
        """The text of a matchable field (see ``FIELDS``)."""
        if name == "author":
            return ", ".join(self.authors)
        value = getattr(self, name)
        return value if isinstance(value, str) else ""

    def to_dict(self) -> dict[str, Any]:
        # Its fields are plain values: read each (``asdict`` copies each deeply, a sixth of
        # the cost of writing an item to the history).
        data = {name: getattr(self, name) for name in _ITEM_FIELDS}
        data["published"] = self.published.isoformat() if self.published else None
        data["authors"] = list(self.authors)
        data["tags"] = list(self.tags)
        if not self.shared_url:
            del data["shared_url"]  # the usual case says nothing
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        """The item written by ``to_dict``; ``ValueError`` for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"an item must be an object, not {type(data).__name__}")
        for key in ("id", "source"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"an item needs a non-empty string {key!r}")
        for key in ("guid", "url", "title", "text"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"an item's {key!r} must be a string")
        return cls(
            id=data["id"],
            source=data["source"],
            title=data.get("title") or "",
            text=data.get("text") or "",
            url=data.get("url"),
            published=_dt(data.get("published")),
            guid=data.get("guid"),
            authors=tuple(data.get("authors") or ()),
            tags=tuple(data.get("tags") or ()),
            language=data.get("language"),
            path=data.get("path"),
            shared_url=bool(data.get("shared_url", False)),
        )


_ITEM_FIELDS = tuple(f.name for f in fields(Item))


@dataclass(frozen=True, slots=True)
class Match:
    """One occurrence of a query term: ``start``/``end`` index the original field text."""

    field: str
    term: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Match:
        return cls(data["field"], data["term"], int(data["start"]), int(data["end"]))


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched an item, with the term occurrences that made it match."""

    rule: str
    matches: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """What a channel delivers: one rule matched one story, first time or as a follow-up."""

    id: str
    rule: str
    rule_name: str
    severity: Severity
    item: Item
    story: str
    matches: tuple[Match, ...]
    channels: tuple[str, ...]
    followup: bool = False
    sources: int = 1
    created: datetime | None = field(default=None, compare=False)
    related: str | None = None
    """The story this item may belong to, when the tie was too loose to call it a follow-up
    (or the rule sends follow-ups as alerts of their own)."""
    related_title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "item": self.item.to_dict(),
            "story": self.story,
            "matches": [m.to_dict() for m in self.matches],
            "channels": list(self.channels),
            "followup": self.followup,
            "sources": self.sources,
            "created": self.created.isoformat() if self.created else None,
            "related": self.related,
            "related_title": self.related_title,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """The alert written by ``to_dict``; ``ValueError`` for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError("an alert must be an object with a string 'id'")
        return cls(
            id=data["id"],
            rule=data["rule"],
            rule_name=data.get("rule_name") or data["rule"],
            severity=data.get("severity", "normal"),
            item=Item.from_dict(data["item"]),
            story=data["story"],
            matches=tuple(Match.from_dict(m) for m in data.get("matches") or ()),
            channels=tuple(data.get("channels") or ()),
            followup=bool(data.get("followup", False)),
            sources=int(data.get("sources", 1)),
            created=_dt(data.get("created")),
            related=data.get("related") or None,
            related_title=str(data.get("related_title") or ""),
        )


@dataclass(frozen=True, slots=True)
class Digest:
    """Alerts held for one channel and sent together: a digest period, or the end of quiet
    hours. ``id`` is stable for the held batch, so a redelivery of the digest repeats it."""

    id: str
    channel: str
    alerts: tuple[Alert, ...]
    due: datetime
    schedule: str = ""  # what held them: "1h", "daily 08:00 Europe/Berlin", "quiet hours"

    def stories(self) -> list[tuple[str, list[Alert]]]:
        """The alerts grouped by story, stories in order of their first alert."""
        groups: dict[str, list[Alert]] = {}
        for alert in self.alerts:
            groups.setdefault(alert.story, []).append(alert)
        return list(groups.items())

    def summary(self) -> str:
        """``3 alerts in 2 stories (1h, until 2026-11-22 10:00 UTC)``."""
        count, stories = len(self.alerts), len(self.stories())
        until = self.due.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        what = f"{count} alert{'s' if count != 1 else ''} in {stories} stor"
        what += "ies" if stories != 1 else "y"
        return f"{what} ({self.schedule}, until {until})" if self.schedule else f"{what}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one outbox entry in the dispatch role."""

    entry: str
    delivery: str
    state: str  # sent | duplicate | busy (another dispatcher has it) | held | retry | dead
    reason: str | None = None
    channel: str = ""
    rule: str = ""
    unsure: bool = False  # retried after a send that may have arrived (a timeout)
