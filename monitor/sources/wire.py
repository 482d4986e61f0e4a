"""Wire services: a JSON endpoint polled like a feed, its items read as IPTC ninjs or mapped.

IPTC ninjs 1.x to 3.x is built in: ``uri``/``guid``; ``headline`` (1.x) or ``headlines``;
``body_text``/``body_html`` (1.x) or ``bodies``; ``versioncreated``/``firstcreated`` (lower
case in 1.x and 2.x, ``versionCreated``/``firstCreated`` in 3.x); ``language``; ``subject``/
``subjects`` and ``keywords`` as tags; ``byline`` (1.x) or ``by`` as the author. Items are the
top-level list, or the list under ``items`` or ``data`` (also ``data.items``), or one object;
AP-style ``{"item": {…}}`` wrappers are unwrapped. Withheld and canceled items are skipped.

Any other API is read through a mapping of JMESPath expressions, compiled once: ``items`` (on
the whole response; optional, found as for ninjs when absent), then on each item ``title``
(required), ``id``, ``body``, ``url``, ``published``, ``authors``, ``tags`` and ``language``.
The mapping may also name ``since_param``, the query parameter that carries the cursor (the
newest published time seen so far, ISO 8601 UTC) to the API; both formats accept it.

``parse_wire`` is pure; ``WireSource`` fetches through the HTTP layer the feeds use
(conditional GET, caps, timeouts, redirects) and keeps ``since`` next to the validators.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import jmespath  # type: ignore[import-untyped]
import jmespath.exceptions  # type: ignore[import-untyped]

from monitor.clock import Clock, system_clock, utc_now
from monitor.core.html import html_to_text, tidy_whitespace
from monitor.errors import ConfigError, FetchErrorKind, SourceError
from monitor.http import DEFAULT_LIMITS, Download, FetchLimits, fetch_url
from monitor.models import Item
from monitor.sources.base import FetchResult
from monitor.sources.conditional import download_fields, next_state, resume_state, unparsed_result
from monitor.sources.feed import item_id, parse_iso_datetime

__all__ = ["MAPPING_FIELDS", "ParsedWire", "WireMapping", "WireSource", "parse_wire"]

MAPPING_FIELDS = ("items", "id", "title", "body", "url", "published", "authors", "tags", "language")
MAPPING_OPTIONS = ("since_param",)
WIRE_ACCEPT = "application/json, application/ninjs+json;q=0.9, */*;q=0.5"
_SKIPPED_STATUSES = frozenset({"withheld", "canceled", "cancelled"})


@dataclass(frozen=True, slots=True)
class WireMapping:
    """JMESPath expressions compiled once, by field name, and the cursor's query parameter."""

    expressions: Mapping[str, Any] = field(default_factory=dict)
    since_param: str | None = None

    @classmethod
    def compile(cls, mapping: Mapping[str, str], *, require_title: bool = True) -> WireMapping:
        """Compile ``mapping``; a ``ConfigError`` names every unknown key and bad expression."""
        problems: list[str] = []
        expressions: dict[str, Any] = {}
        for key, value in mapping.items():
            if key in MAPPING_OPTIONS:
                continue
            if key not in MAPPING_FIELDS:
                known = ", ".join((*MAPPING_FIELDS, *MAPPING_OPTIONS))
                problems.append(f"mapping: unknown key {key!r} (known: {known})")
                continue
            try:
                expressions[key] = jmespath.compile(value)
            except jmespath.exceptions.JMESPathError as exc:
                reason = str(exc).replace("\n", " ")
                problems.append(f"mapping.{key}: invalid JMESPath {value!r}: {reason}")
        if require_title and "title" not in mapping:
            problems.append("mapping: 'title' is required")
        since = mapping.get("since_param")
        if since is not None and not since.strip():
            problems.append("mapping.since_param: an empty query parameter name")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(expressions, since.strip() if since else None)

    @classmethod
    def options_only(cls, mapping: Mapping[str, str]) -> WireMapping:
        """For ninjs: only ``since_param`` may be given, field expressions are refused."""
        extra = sorted(set(mapping) - set(MAPPING_OPTIONS))
        if extra:
            raise ConfigError(f"mapping: {', '.join(extra)} apply only to format: mapping")
        return cls.compile(mapping, require_title=False)


@dataclass(frozen=True, slots=True)
class ParsedWire:
    """The items of one response, the skipped ones, and the newest real publication time."""

    items: tuple[Item, ...]
    problems: tuple[str, ...] = ()
    newest: datetime | None = None


def parse_wire(
    data: bytes,
    source: str,
    *,
    mapping: WireMapping | None = None,
    url: str | None = None,
    now: datetime | None = None,
) -> ParsedWire:
    """Items of a wire response: IPTC ninjs, or through ``mapping`` when it has expressions.

    ``url`` resolves relative links; ``now`` replaces a missing or future date (the time the
    item was first seen) and is never taken for ``newest``, which feeds the cursor.
    Raises ``SourceError`` when the response is not JSON or holds no list of items.
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SourceError(f"invalid JSON: {exc}") from exc
    expressions = mapping.expressions if mapping else {}
    if "items" in expressions:
        try:
            found = expressions["items"].search(document)
        except jmespath.exceptions.JMESPathError as exc:
            raise SourceError(f"mapping.items failed: {exc}") from exc
        if not isinstance(found, list):
            kind = type(found).__name__ if found is not None else "nothing"
            raise SourceError(f"mapping.items found {kind}, not a list of items")
        entries: list[Any] = found
    else:
        entries = _ninjs_entries(document)
    read = _mapped if any(name != "items" for name in expressions) else _ninjs
    items: dict[str, Item] = {}
    problems: list[str] = []
    newest: datetime | None = None
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and isinstance(entry.get("item"), dict) and read is _ninjs:
            entry = entry["item"]
        if not isinstance(entry, dict):
            problems.append(f"item {index}: not an object")
            continue
        try:
            fields = read(entry, expressions)
        except (SourceError, jmespath.exceptions.JMESPathError) as exc:
            problems.append(f"item {index}: {exc}")
            continue
        published = fields.published
        if published is not None and (now is None or published <= now):
            newest = published if newest is None else max(newest, published)
        item = fields.item(source, url, now)
        if item.id in items:
            problems.append(f"item {index}: duplicate id {item.guid!r} (kept the first)")
        else:
            items[item.id] = item
    return ParsedWire(tuple(items.values()), tuple(problems), newest)


@dataclass(frozen=True, slots=True)
class _Fields:
    """What was read from one entry, before it becomes an ``Item``."""

    title: str
    text: str
    ident: str | None = None
    url: str | None = None
    published: datetime | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    language: str | None = None

    def item(self, source: str, base: str | None, now: datetime | None) -> Item:
        link = _web_url(self.url, base)
        published = self.published
        stamp = published.isoformat() if published else ""
        guid = self.ident or link or hashlib.sha256(f"{self.title}\0{stamp}".encode()).hexdigest()
        if now is not None and (published is None or published > now):
            published = now
        return Item(
            id=item_id(source, guid),
            source=source,
            title=self.title,
            text=self.text,
            url=link,
            published=published,
            guid=guid,
            authors=self.authors,
            tags=self.tags,
            language=self.language,
        )


# --- ninjs --------------------------------------------------------------------------------


def _ninjs_entries(document: Any) -> list[Any]:
    """The item list of a response: a list, ``items``, ``data``, ``data.items`` or one item."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in ("items", "data"):
            value = document.get(key)
            if isinstance(value, list):
                return value
            if isinstance(value, dict) and isinstance(value.get("items"), list):
                return list(value["items"])
        if any(key in document for key in ("uri", "guid", "headline", "headlines")):
            return [document]
    raise SourceError("no list of items (a JSON list, or one under 'items' or 'data')")


def _get(entry: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` that ``entry`` has (ninjs 3.x renamed fields to camelCase)."""
    for name in names:
        value = entry.get(name)
        if value is not None:
            return value
    return None


def _ninjs(entry: Mapping[str, Any], expressions: Mapping[str, Any]) -> _Fields:
    status = _text(_get(entry, "pubstatus", "pubStatus"))
    if status and status.lower() in _SKIPPED_STATUSES:
        raise SourceError(f"{status} ({_text(_get(entry, 'uri', 'guid')) or 'no uri'})")
    title = _text(entry.get("headline")) or _role_value(entry.get("headlines"), "main") or ""
    text = _ninjs_body(entry)
    if not title and not text:
        raise SourceError("neither a headline nor a body")
    ident = _text(_get(entry, "uri", "guid", "id"))
    tags = (
        _names(entry.get("subject"))
        + _names(entry.get("subjects"))
        + _strings(entry.get("keywords"))
    )
    author = _text(_get(entry, "byline", "by"))
    return _Fields(
        title=html_to_text(title),
        text=text,
        ident=ident,
        url=_ninjs_link(entry, ident),
        published=parse_time(
            _get(entry, "versioncreated", "versionCreated", "firstcreated", "firstCreated")
        ),
        authors=(author,) if author else (),
        tags=tuple(dict.fromkeys(tags)),
        language=_text(entry.get("language")),
    )


def _ninjs_body(entry: Mapping[str, Any]) -> str:
    plain = _text(entry.get("body_text"))
    if plain:
        return tidy_whitespace(plain)
    markup = _text(entry.get("body_html"))
    if markup:
        return html_to_text(markup)
    bodies = [b for b in entry.get("bodies") or () if isinstance(b, dict) and _text(b.get("value"))]
    for body in bodies:
        kind = (_text(_get(body, "contenttype", "contentType")) or "").lower()
        if kind.startswith("text/plain"):
            return tidy_whitespace(str(body["value"]))
    if bodies:
        return html_to_text(str(bodies[0]["value"]))
    description = _text(entry.get("description_text")) or _role_value(
        entry.get("descriptions"), None
    )
    return html_to_text(description) if description else ""


def _role_value(values: Any, role: str | None) -> str | None:
    """The ``value`` with ``role`` in a ninjs list of ``{role, value}``, else the first one."""
    if not isinstance(values, list):
        return None
    candidates = [v for v in values if isinstance(v, dict) and _text(v.get("value"))]
    for value in candidates:
        if role is not None and value.get("role") == role:
            return str(value["value"])
    return str(candidates[0]["value"]) if candidates else None


def _ninjs_link(entry: Mapping[str, Any], ident: str | None) -> str | None:
    """A web link: ``links`` with rel canonical or alternate, else the uri if it is http(s)."""
    for link in entry.get("links") or ():
        if isinstance(link, dict) and link.get("rel") in ("canonical", "alternate"):
            href = _text(link.get("href"))
            if href:
                return href
    return ident if ident and urlsplit(ident).scheme in ("http", "https") else None


# --- mapping ------------------------------------------------------------------------------


def _mapped(entry: Mapping[str, Any], expressions: Mapping[str, Any]) -> _Fields:
    def value(name: str) -> Any:
        expression = expressions.get(name)
        return expression.search(entry) if expression is not None else None

    title = _text(value("title"))
    body = _text(value("body"))
    if not title and not body:
        raise SourceError("mapping found neither a title nor a body")
    return _Fields(
        title=html_to_text(title or ""),
        text=html_to_text(body or ""),
        ident=_text(value("id")),
        url=_text(value("url")),
        published=parse_time(value("published")),
        authors=_names(value("authors")),
        tags=_names(value("tags")),
        language=_text(value("language")),
    )


# --- values -------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from ISO 8601 / RFC 3339, RFC 2822, or epoch seconds or milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    parsed = parse_iso_datetime(value)
    if parsed is not None:
        return parsed
    try:
        rfc = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return rfc.replace(tzinfo=UTC) if rfc.tzinfo is None else rfc.astimezone(UTC)


def _text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(t for t in map(_text, values) if t)


def _names(values: Any) -> tuple[str, ...]:
    """Names from a string, a list of strings, or a list of ``{"name": …}`` objects."""
    if isinstance(values, str | int | float) and not isinstance(values, bool):
        one = _text(values)
        return (one,) if one else ()
    if not isinstance(values, list):
        return ()
    names: list[str] = []
    for value in values:
        name = _text(value.get("name")) if isinstance(value, dict) else _text(value)
        if name and name not in names:
            names.append(name)
    return tuple(names)


def _web_url(link: str | None, base: str | None) -> str | None:
    if not link:
        return None
    absolute = urljoin(base, link) if base else link
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _cursor(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the source ---------------------------------------------------------------------------


class WireSource:
    """A JSON wire endpoint, fetched through the shared client.

    ``format`` is ``ninjs`` or ``mapping`` (then ``mapping`` holds the JMESPath expressions);
    either may set ``since_param``. ``headers`` (an ``Authorization`` header, say) arrive with
    their values already expanded from the environment. ``state`` keys: those of the HTTP layer
    (``etag``, ``last_modified``, ``url``, ``configured_url``) and ``since``, the cursor. An empty
    response is no error: a quiet wire has nothing new. Raises ``ConfigError`` on a bad mapping.
    """

    def __init__(
        self,
        id: str,
        url: str,
        client: httpx.AsyncClient,
        limits: FetchLimits = DEFAULT_LIMITS,
        *,
        format: Literal["ninjs", "mapping"] = "ninjs",
        mapping: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._id = id
        self.url = url
        self.client = client
        self.limits = limits
        self.headers = {"Accept": WIRE_ACCEPT, **(headers or {})}
        if format == "mapping":
            self.mapping = WireMapping.compile(mapping or {})
        else:
            self.mapping = WireMapping.options_only(mapping or {})
        self.clock = clock

    @property
    def id(self) -> str:
        return self._id

    async def fetch(self, state: Mapping[str, str]) -> FetchResult:
        """One conditional GET with the cursor, then the items it returned."""
        url, etag, last_modified = resume_state(state, self.url)
        fresh = state.get("configured_url", self.url) == self.url
        since = (state.get("since") or None) if fresh else None
        since_param = self.mapping.since_param
        if since and since_param:
            try:
                url = str(httpx.URL(url).copy_merge_params({since_param: since}))
            except httpx.InvalidURL as exc:
                return FetchResult(
                    self._id,
                    error=f"invalid URL: {exc}",
                    error_kind=FetchErrorKind.INVALID_URL,
                    state=dict(state),
                )
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
        if download.moved_to and since_param:
            download = _without_param(download, since_param)
        common = download_fields(download)
        kept = {**next_state(download, state, self.url), "since": since or ""}
        early = unparsed_result(self._id, download, state, kept)
        if early is not None:
            return early
        started = time.monotonic()
        try:
            parsed = await asyncio.to_thread(
                parse_wire,
                download.body,
                self._id,
                mapping=self.mapping,
                url=download.url,
                now=now,
            )
        except SourceError as exc:
            elapsed = download.elapsed_s + time.monotonic() - started
            return FetchResult(
                self._id,
                error=str(exc),
                error_kind=FetchErrorKind.PARSE,
                state=dict(state),
                elapsed_s=elapsed,
                **common,
            )
        if parsed.newest is not None:
            previous = parse_time(since) if since else None
            newest = parsed.newest if previous is None else max(previous, parsed.newest)
            kept["since"] = _cursor(newest)
        return FetchResult(
            self._id,
            items=parsed.items,
            problems=parsed.problems,
            state=kept,
            elapsed_s=download.elapsed_s + time.monotonic() - started,
            **common,
        )


def _without_param(download: Download, name: str) -> Download:
    """``download`` whose ``moved_to`` no longer carries the cursor parameter."""
    if download.moved_to is None:
        return download
    moved = httpx.URL(download.moved_to).copy_remove_param(name)
    return replace(download, moved_to=str(moved))
