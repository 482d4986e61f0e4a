"""Finding the feed of a site page, for ``monitor sources add``.

The URL given is fetched once: a feed is taken as it is; an HTML page is searched for the feeds
it announces (``<link rel="alternate" type="application/rss+xml">``, Atom, JSON Feed), then the
paths sites commonly use (``/feed``, ``/rss.xml``…). Each candidate is fetched and parsed as the
poll role would; the first one that yields entries wins. Everything goes through ``fetch_url``,
with its limits and address checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
from selectolax.lexbor import LexborHTMLParser

from monitor.errors import SourceError
from monitor.http import DEFAULT_LIMITS, FetchLimits, fetch_url
from monitor.sources.feed import parse_feed

FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
    "text/xml",
    "application/xml",
)
COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml", "/feed/")
MAX_CANDIDATES = 8


@dataclass(frozen=True, slots=True)
class Found:
    """A feed that was fetched and read: where, its title, and how many entries it has."""

    url: str
    title: str
    entries: int


def announced(html: bytes, base: str) -> list[str]:
    """The feeds an HTML page announces in its ``<link rel="alternate">`` elements, absolute,
    in page order."""
    tree = LexborHTMLParser(html)
    found: list[str] = []
    for node in tree.css("link[href]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        kind = (node.attributes.get("type") or "").lower().split(";")[0].strip()
        href = node.attributes.get("href") or ""
        if "alternate" in rel and kind in FEED_TYPES and href:
            url = urljoin(base, href)
            if urlsplit(url).scheme in ("http", "https") and url not in found:
                found.append(url)
    return found


def _title(html: bytes) -> str:
    node = LexborHTMLParser(html).css_first("title")
    return node.text(strip=True) if node is not None else ""


async def _read(
    client: httpx.AsyncClient, url: str, limits: FetchLimits
) -> tuple[Found | None, bytes, str]:
    """``url`` fetched: the feed it is (or None), its body, and why it is not one."""
    download = await fetch_url(client, url, limits=limits)
    if download.error is not None:
        return None, b"", download.error
    try:
        parsed = parse_feed(download.body, "discovery", download.url)
    except SourceError as exc:
        return None, download.body, str(exc)
    if not parsed.items:
        return None, download.body, "a feed without entries"
    title = _feed_title(download.body) or urlsplit(download.url).netloc
    return Found(download.url, title, len(parsed.items)), download.body, ""


def _feed_title(body: bytes) -> str:
    """A feed document's own title (RSS ``channel/title``, Atom ``feed/title``), if any."""
    tree = LexborHTMLParser(body[:20000])
    node = tree.css_first("title")
    return node.text(strip=True) if node is not None else ""


async def discover(
    client: httpx.AsyncClient, url: str, *, limits: FetchLimits = DEFAULT_LIMITS
) -> Found:
    """The feed at or announced by ``url``; ``SourceError`` saying what was tried when none."""
    found, body, why = await _read(client, url, limits)
    if found is not None:
        return found
    if not body:
        raise SourceError(f"{url}: {why}")
    root = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    candidates = announced(body, url) + [urljoin(root, path) for path in COMMON_PATHS]
    tried: list[str] = []
    for candidate in list(dict.fromkeys(candidates))[:MAX_CANDIDATES]:
        feed, _, reason = await _read(client, candidate, limits)
        if feed is not None:
            return feed
        tried.append(f"{candidate} ({reason})")
    page = _title(body)
    raise SourceError(
        f"{url}{f' ({page})' if page else ''} is not a feed and announces none that can be read; "
        f"tried: {'; '.join(tried)}"
    )
