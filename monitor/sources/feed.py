"""Feeds: RSS, Atom and RDF through feedparser, JSON Feed by hand, into ``Item``s.

``parse_feed`` is pure: it gets the bytes of a document (fetching is ``FeedSource``'s job, and
feedparser is never handed anything it could open or download) and returns immutable items.
feedparser runs without its HTML sanitizer and URI rewriting (``html_to_text`` does what we
need of both, several times faster), and never sees an XML entity declaration: the internal
subset of a DOCTYPE is removed before parsing, so external entities (XXE) cannot read files or
URLs and nested or huge entities (billion laughs, quadratic blowup) cannot expand.

``FeedSource`` polls one feed URL through the shared HTTP layer (``monitor.sources.http``):
conditional GET, caps, timeouts, redirects; a 304 costs no parsing at all.
"""

from __future__ import annotations

import asyncio
import calendar
import email.utils
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from monitor.clock import Clock, system_clock, utc_now
from monitor.core.dedup import canonical_url
from monitor.core.html import html_to_text, tidy_whitespace
from monitor.errors import FetchErrorKind, SourceError
from monitor.http import DEFAULT_LIMITS, FetchLimits, fetch_url
from monitor.models import Item
from monitor.sources.base import FetchResult
from monitor.sources.conditional import download_fields, next_state, resume_state, unparsed_result
from monitor.sources.feed_xml import safe_parse

__all__ = [
    "FeedSource",
    "ParsedFeed",
    "feed_items",
    "is_json_feed",
    "item_id",
    "parse_feed",
    "parse_iso_datetime",
]

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The items of one feed document; ``bozo`` says why it was malformed yet still readable,
    ``problems`` name the entries that were skipped (a GUID repeated within the feed)."""

    items: tuple[Item, ...]
    bozo: str | None = None
    problems: tuple[str, ...] = ()


def item_id(source: str, guid: str) -> str:
    """The item id of a feed entry: stable for the same (source, guid), whatever the content."""
    return f"{source}:{hashlib.sha256(guid.encode()).hexdigest()[:16]}"


def parse_feed(
    data: bytes,
    source: str,
    url: str | None = None,
    *,
    now: datetime | None = None,
    charset: str | None = None,
) -> ParsedFeed:
    """Parse an RSS / Atom / RDF / JSON Feed document into the items of ``source``.

    ``url`` is where the document came from; relative entry links are resolved against it.
    ``now`` is when the document was fetched: an entry without a readable date, or dated in the
    future, is published ``now`` (the time it was first seen); without ``now`` it has no date.
    ``charset`` is the HTTP charset, used when the document declares none itself (a BOM or an
    XML declaration wins: servers default to a charset far more often than documents lie).
    Entries repeating a GUID seen earlier in the document are skipped (``problems``).
    Raises ``SourceError`` when the bytes are not a readable feed at all.
    """
    if not data.strip():
        raise SourceError("empty document")
    document = _json_document(data)
    if document is not None:
        return _unique(*_json_feed_items(document, source, url, now))
    parsed, bozo = safe_parse(data, charset)
    if not parsed.entries and bozo is not None:
        raise SourceError(f"not a readable feed: {bozo}")
    if not parsed.entries and not parsed.get("version"):
        raise SourceError("not a feed: no RSS, Atom or RDF document element")
    base = url or _str(parsed.feed.get("link"))
    items, skipped = feed_items(parsed, source, base, now)
    return _unique(items, skipped, bozo)


def feed_items(
    parsed: Any, source: str, url: str | None, now: datetime | None
) -> tuple[list[Item], list[str]]:
    """The items of a feedparser result, entry by entry (what ``parse_feed`` does after
    parsing), and the entries that could not be read, each with its position and why (the rest
    of the feed goes through); ``url`` resolves relative links."""
    language = _str(parsed.feed.get("language")) or _detail_language(parsed.feed, "title")
    rss = not str(parsed.get("version") or "").startswith("atom")
    items: list[Item] = []
    skipped: list[str] = []
    for index, entry in enumerate(parsed.entries, 1):
        try:
            items.append(_entry_item(entry, source, url, language, now, rss))
        except Exception as exc:  # one unreadable entry must not cost the others
            skipped.append(f"entry {index} skipped: {type(exc).__name__}: {exc}")
    return items, skipped


def _sharing_links(items: list[Item]) -> list[Item]:
    """The items, those whose link other entries of the document (with other GUIDs) carry too
    marked ``shared_url``: such a link (a podcast's home page) identifies none of them."""
    links = [canonical_url(item.url) if item.url else None for item in items]
    guids: dict[str, set[str]] = {}
    for item, url in zip(items, links, strict=True):
        if url:
            guids.setdefault(url, set()).add(item.guid or item.id)
    shared = {url for url, found in guids.items() if len(found) > 1}
    return [
        replace(item, shared_url=True) if url in shared else item
        for item, url in zip(items, links, strict=True)
    ]


def _unique(
    items: Iterable[Item], skipped: Iterable[str] = (), bozo: str | None = None
) -> ParsedFeed:
    """The first entry of each GUID; later repeats become problems (the id would clash)."""
    kept: dict[str, Item] = {}
    problems: list[str] = list(skipped)
    items = _sharing_links(list(items))
    for item in items:
        if item.id in kept:
            problems.append(f"entry with a duplicate GUID {item.guid!r} (kept the first)")
        else:
            kept[item.id] = item
    return ParsedFeed(tuple(kept.values()), bozo, tuple(problems))


def _first_seen(published: datetime | None, now: datetime | None) -> datetime | None:
    """``published``, unless it is missing or in the future: then ``now``, when first seen."""
    if now is None or (published is not None and published <= now):
        return published
    return now


def _entry_item(
    entry: dict[str, Any],
    source: str,
    base: str | None,
    feed_language: str | None,
    now: datetime | None,
    rss: bool,
) -> Item:
    title = _detail_text(entry, "title", rss)
    texts = [_detail_text(content, None, rss) for content in entry.get("content") or ()]
    texts.append(_detail_text(entry, "summary", rss))
    text = max(texts, key=len)
    publisher = _publisher(entry)
    if publisher:  # an aggregator's entry (Google News): the outlet is not part of the story
        title, text = _without(title, publisher), _without(text, publisher)
    canonical = next(
        (
            _str(link.get("href"))
            for link in entry.get("links") or ()
            if isinstance(link, dict) and link.get("rel") == "canonical"
        ),
        None,
    )
    link = _web_url(canonical or _str(entry.get("link")), base)  # a canonical link wins
    # dict.get: feedparser maps a missing "updated" to "published" with a DeprecationWarning.
    date = _str(dict.get(entry, "published")) or _str(dict.get(entry, "updated")) or ""
    published = (
        _struct_time(dict.get(entry, "published_parsed"))
        or _struct_time(dict.get(entry, "updated_parsed"))
        or _loose_date(date)
    )
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
        published=_first_seen(published, now),
        guid=guid,
        authors=_names(entry.get("authors") or ()) or ((publisher,) if publisher else ()),
        tags=tuple(t for t in (_str(tag.get("term")) for tag in entry.get("tags") or ()) if t),
        language=language,
    )


def _publisher(entry: Mapping[str, Any]) -> str | None:
    """The outlet an aggregator names in an entry's ``<source>`` (RSS) element."""
    source = entry.get("source")
    name = source.get("title") if isinstance(source, Mapping) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def _without(text: str, publisher: str) -> str:
    """``text`` without the publisher's name at its end (" - Reuters", "…  Reuters")."""
    stripped = text.rstrip()
    if not stripped.endswith(publisher):
        return text
    head = stripped[: -len(publisher)]
    rest = head.rstrip()
    if not rest or rest == head:  # nothing else, or the name ends a longer word
        return text
    for separator in (" -", " –", " —", " |", " ·"):
        if rest.endswith(separator):
            return rest[: -len(separator)].rstrip()
    return rest


def _web_url(link: str | None, base: str | None) -> str | None:
    """``link`` made absolute against ``base``; None unless it is an http(s) URL (Atom ids such
    as ``urn:…`` end up in feedparser's ``link`` when an entry has none)."""
    if not link:
        return None
    try:
        absolute = urljoin(base, link) if base else link
        return absolute if urlsplit(absolute).scheme in ("http", "https") else None
    except ValueError:  # "http://[x/": not a URL at all
        return None


_CLOSING_TAG = re.compile(r"</[A-Za-z][\w:-]*\s*>")


def _detail_text(holder: Mapping[str, Any], key: str | None, rss: bool) -> str:
    """A text construct as plain text: HTML removed when feedparser says it is HTML.

    In RSS, where no field says whether it holds text or HTML, text with a closing tag is
    HTML too: feedparser calls a title with a ``<script>`` in it plain text.
    """
    if key is None:
        value, detail = holder.get("value"), holder
    else:
        value, detail = holder.get(key), holder.get(f"{key}_detail") or {}
    if not isinstance(value, str):
        return ""
    kind = detail.get("type") or "text/html"
    if "html" in kind or (rss and _CLOSING_TAG.search(value)):
        return html_to_text(value)
    return tidy_whitespace(value)


def _loose_date(value: str) -> datetime | None:
    """A date feedparser could not read: RFC 2822 or ISO 8601 without a zone (read as UTC)."""
    if not value:
        return None
    parsed = parse_iso_datetime(value)
    if parsed is not None:
        return parsed
    try:
        loose = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return loose.replace(tzinfo=UTC) if loose.tzinfo is None else loose.astimezone(UTC)


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


def _json_feed_items(
    document: dict[str, Any], source: str, url: str | None, now: datetime | None
) -> tuple[tuple[Item, ...], list[str]]:
    entries = document.get("items")
    if not isinstance(entries, list):
        raise SourceError("JSON Feed without an items list")
    base = url or _str(document.get("feed_url")) or _str(document.get("home_page_url"))
    language = _str(document.get("language"))
    feed_authors = _json_authors(document)
    items: list[Item] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            continue
        try:
            items.append(_json_feed_item(entry, source, base, language, feed_authors, now))
        except Exception as exc:  # one unreadable entry must not cost the others
            skipped.append(f"entry {index} skipped: {type(exc).__name__}: {exc}")
    return tuple(items), skipped


def _json_feed_item(
    entry: dict[str, Any],
    source: str,
    base: str | None,
    feed_language: str | None,
    feed_authors: tuple[str, ...],
    now: datetime | None,
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
        published=_first_seen(parse_iso_datetime(date), now),
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


# --- the source ---------------------------------------------------------------------------


class FeedSource:
    """An RSS, Atom, RDF or JSON Feed URL, fetched through the shared client.

    ``headers`` are sent with every request to the feed's own origin (values already expanded
    from the environment by the caller). ``state`` keys (see ``monitor.sources.http``):
    ``etag``, ``last_modified``, ``url`` (set after a permanent redirect) and
    ``configured_url``. A feed that parses to no entries at all is an error for this feed.
    """

    def __init__(
        self,
        id: str,
        url: str,
        client: httpx.AsyncClient,
        limits: FetchLimits = DEFAULT_LIMITS,
        headers: Mapping[str, str] | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._id = id
        self.url = url
        self.client = client
        self.limits = limits
        self.headers = {"Accept": FEED_ACCEPT, **(headers or {})}
        self.clock = clock

    @property
    def id(self) -> str:
        return self._id

    async def fetch(self, state: Mapping[str, str]) -> FetchResult:
        """One conditional GET and, unless the server answered 304, one parse (off the loop)."""
        url, etag, last_modified = resume_state(state, self.url)
        now = utc_now(self.clock)
        download = await fetch_url(
            self.client,
            url,
            limits=self.limits,
            headers=self.headers,
            etag=etag,
            last_modified=last_modified,
            trusted=self.url,
        )
        common = download_fields(download)
        early = unparsed_result(self._id, download, state, next_state(download, state, self.url))
        if early is not None:
            return early
        started = time.monotonic()
        error: str | None = None
        try:
            parsed = await asyncio.to_thread(
                parse_feed,
                download.body,
                self._id,
                download.url,
                now=now,
                charset=download.charset,
            )
        except SourceError as exc:
            parsed, error = ParsedFeed(()), str(exc)
        except Exception as exc:  # a parser bug on hostile bytes: this source's error, no more
            parsed, error = ParsedFeed(()), f"unreadable feed: {type(exc).__name__}: {exc}"
        else:
            if not parsed.items:
                error = "the feed has no entries"
        elapsed = download.elapsed_s + time.monotonic() - started
        if error is not None:
            # The validators are not kept: the next poll fetches and reports the feed again.
            return FetchResult(
                self._id,
                error=error,
                error_kind=FetchErrorKind.PARSE,
                state=dict(state),
                bozo=parsed.bozo,
                elapsed_s=elapsed,
                **common,
            )
        return FetchResult(
            self._id,
            items=parsed.items,
            problems=parsed.problems,
            state=next_state(download, state, self.url),
            bozo=parsed.bozo,
            elapsed_s=elapsed,
            **common,
        )
