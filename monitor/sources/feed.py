"""Feeds: RSS, Atom and RDF through feedparser, JSON Feed by hand, into ``Item``s.

``parse_feed`` is pure: it gets the bytes of a document (fetching is someone else's job, and
feedparser is never handed anything it could open or download) and returns immutable items.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from monitor.core.html import html_to_text, tidy_whitespace
from monitor.errors import SourceError
from monitor.models import Item

__all__ = ["ParsedFeed", "is_json_feed", "item_id", "parse_feed", "parse_iso_datetime"]


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The items of one feed document; ``bozo`` says why it was malformed yet still readable."""

    items: tuple[Item, ...]
    bozo: str | None = None


def item_id(source: str, guid: str) -> str:
    """The item id of a feed entry: stable for the same (source, guid), whatever the content."""
    return f"{source}:{hashlib.sha256(guid.encode()).hexdigest()[:16]}"


def parse_feed(data: bytes, source: str, url: str | None = None) -> ParsedFeed:
    """Parse an RSS / Atom / RDF / JSON Feed document into the items of ``source``.

    ``url`` is where the document came from; relative entry links are resolved against it.
    Raises ``SourceError`` when the bytes are not a readable feed at all.
    """
    if not data.strip():
        raise SourceError("empty document")
    document = _json_document(data)
    if document is not None:
        return ParsedFeed(_json_feed_items(document, source, url))
    # A file-like object: feedparser would try to open or download a str or bytes argument.
    parsed = feedparser.parse(io.BytesIO(data))
    bozo = _bozo_message(parsed)
    if not parsed.entries and bozo is not None:
        raise SourceError(f"not a readable feed: {bozo}")
    if not parsed.entries and not parsed.get("version"):
        raise SourceError("not a feed: no RSS, Atom or RDF document element")
    feed_language = _str(parsed.feed.get("language")) or _detail_language(parsed.feed, "title")
    base = url or _str(parsed.feed.get("link"))
    items = tuple(_entry_item(entry, source, base, feed_language) for entry in parsed.entries)
    return ParsedFeed(items, bozo)


def _bozo_message(parsed: Mapping[str, Any]) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "malformed feed"
    return str(exc) or type(exc).__name__


def _entry_item(
    entry: Mapping[str, Any], source: str, base: str | None, feed_language: str | None
) -> Item:
    title = _detail_text(entry, "title")
    texts = [_detail_text(content, None) for content in entry.get("content") or ()]
    texts.append(_detail_text(entry, "summary"))
    text = max(texts, key=len)
    link = _web_url(_str(entry.get("link")), base)
    published = _struct_time(entry.get("published_parsed")) or _struct_time(
        entry.get("updated_parsed")
    )
    date = _str(entry.get("published")) or _str(entry.get("updated")) or ""
    guid = _str(entry.get("id")) or link or _digest(title, date)
    language = (
        _str(entry.get("language"))
        or _detail_language(entry, "title")
        or _detail_language(entry, "summary")
        or feed_language
    )
    return Item(
        id=item_id(source, guid),
        source=source,
        title=title,
        text=text,
        url=link,
        published=published,
        guid=guid,
        authors=_names(entry.get("authors") or ()),
        tags=tuple(t for t in (_str(tag.get("term")) for tag in entry.get("tags") or ()) if t),
        language=language,
    )


def _web_url(link: str | None, base: str | None) -> str | None:
    """``link`` made absolute against ``base``; None unless it is an http(s) URL (Atom ids such
    as ``urn:…`` end up in feedparser's ``link`` when an entry has none)."""
    if not link:
        return None
    absolute = urljoin(base, link) if base else link
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _detail_text(holder: Mapping[str, Any], key: str | None) -> str:
    """A text construct as plain text: HTML removed when feedparser says it is HTML."""
    if key is None:
        value, detail = holder.get("value"), holder
    else:
        value, detail = holder.get(key), holder.get(f"{key}_detail") or {}
    if not isinstance(value, str):
        return ""
    kind = detail.get("type") or "text/html"
    return html_to_text(value) if "html" in kind else tidy_whitespace(value)


def _detail_language(holder: Mapping[str, Any], key: str) -> str | None:
    detail = holder.get(f"{key}_detail")
    return _str(detail.get("language")) if isinstance(detail, Mapping) else None


def _struct_time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _names(authors: Iterable[Any]) -> tuple[str, ...]:
    names: list[str] = []
    for author in authors:
        name = author.get("name") if isinstance(author, Mapping) else author
        if isinstance(name, str) and name.strip() and name.strip() not in names:
            names.append(name.strip())
    return tuple(names)


def _str(value: Any) -> str | None:
    """A non-empty stripped string, or None (feeds put numbers and blanks where text belongs)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# JSON Feed (https://jsonfeed.org/version/1.1): feedparser does not read it.


def _json_document(data: bytes) -> dict[str, Any] | None:
    """The decoded JSON Feed object, or None when ``data`` is not JSON Feed."""
    head = data.lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if not head.startswith(b"{"):
        return None
    try:
        document = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"invalid JSON: {exc}") from exc
    if is_json_feed(document):
        return document  # type: ignore[no-any-return]
    raise SourceError("a JSON object that is not a JSON Feed (no jsonfeed.org version)")


def is_json_feed(document: Any) -> bool:
    """Whether a decoded JSON value is a JSON Feed document (version 1 or 1.1)."""
    if not isinstance(document, dict):
        return False
    version = document.get("version")
    return isinstance(version, str) and "jsonfeed.org" in version


def _json_feed_items(document: dict[str, Any], source: str, url: str | None) -> tuple[Item, ...]:
    entries = document.get("items")
    if not isinstance(entries, list):
        raise SourceError("JSON Feed without an items list")
    base = url or _str(document.get("feed_url")) or _str(document.get("home_page_url"))
    language = _str(document.get("language"))
    feed_authors = _json_authors(document)
    return tuple(
        _json_feed_item(entry, source, base, language, feed_authors)
        for entry in entries
        if isinstance(entry, dict)
    )


def _json_feed_item(
    entry: dict[str, Any],
    source: str,
    base: str | None,
    feed_language: str | None,
    feed_authors: tuple[str, ...],
) -> Item:
    title = html_to_text(_str(entry.get("title")) or "")
    content_text = _str(entry.get("content_text"))
    content_html = _str(entry.get("content_html"))
    summary = _str(entry.get("summary"))
    if content_text:
        text = tidy_whitespace(content_text)
    elif content_html:
        text = html_to_text(content_html)
    else:
        text = html_to_text(summary or "")
    link = _web_url(_str(entry.get("url")) or _str(entry.get("external_url")), base)
    date = _str(entry.get("date_published")) or _str(entry.get("date_modified")) or ""
    guid = _str(entry.get("id")) or link or _digest(title, date)
    tags = entry.get("tags")
    return Item(
        id=item_id(source, guid),
        source=source,
        title=title,
        text=text,
        url=link,
        published=parse_iso_datetime(date),
        guid=guid,
        authors=_json_authors(entry) or feed_authors,
        tags=tuple(t for t in map(_str, tags) if t) if isinstance(tags, list) else (),
        language=_str(entry.get("language")) or feed_language,
    )


def _json_authors(holder: dict[str, Any]) -> tuple[str, ...]:
    authors = holder.get("authors")
    if isinstance(authors, list):
        return _names(authors)
    author = holder.get("author")  # JSON Feed 1.0
    return _names([author]) if author is not None else ()


def parse_iso_datetime(value: str | None) -> datetime | None:
    """An ISO 8601 / RFC 3339 timestamp as an aware UTC datetime (naive means UTC), else None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
