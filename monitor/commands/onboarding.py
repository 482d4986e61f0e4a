"""``monitor sources add | import | export``: subscribing to feeds without editing YAML by hand.

``add`` finds the feed of a site page (``sources.discovery``), checks it with one fetch, and
appends it to the rule file that holds the sources, comments and order kept
(``app.config_edit``); ``import`` does the same for every feed of an OPML file (those already
subscribed, by URL, are left out) without fetching them; ``export`` writes the feed sources as
OPML 2.0. A new source's first poll alerts only on what was published within its ``backlog``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import quoteattr

from monitor.app.config_edit import add_sources, source_id
from monitor.app.settings import Settings
from monitor.app.wiring import fetch_limits
from monitor.core.config import FeedSourceSpec
from monitor.core.rules import WatchConfig
from monitor.http import make_client
from monitor.sources.discovery import Found, discover

__all__ = ["Added", "add_feed", "export_opml", "import_opml", "opml_feeds"]


@dataclass(frozen=True, slots=True)
class Added:
    """Sources written to a rule file."""

    file: Path
    ids: list[str]
    found: Found | None = None
    skipped: int = 0  # already subscribed


def _urls(config: WatchConfig) -> set[str]:
    return {str(s.url) for s in config.sources if isinstance(s, FeedSourceSpec)}


async def add_feed(
    settings: Settings,
    config: WatchConfig,
    directory: Path,
    url: str,
    *,
    wanted_id: str | None = None,
    file: Path | None = None,
) -> Added:
    """Find, check and add the feed of ``url``. ValueError when the feed (or the id) is
    already there; ``SourceError`` when no feed can be read; ``ConfigError`` when the rules
    would not validate with it."""
    client = make_client(fetch_limits(settings))
    try:
        found = await discover(client, url, limits=fetch_limits(settings))
    finally:
        await client.aclose()
    if found.url in _urls(config):
        raise ValueError(f"{found.url} is already a source")
    taken = {s.id for s in config.sources}
    if wanted_id is not None and wanted_id in taken:
        raise ValueError(f"there is already a source {wanted_id}")
    new_id = wanted_id or source_id(found.url, taken)
    target, _ = add_sources(directory, [{"id": new_id, "type": "feed", "url": found.url}], file)
    return Added(target, [new_id], found)


def opml_feeds(data: bytes) -> list[tuple[str, str]]:
    """The feeds of an OPML document: (title, URL) of each outline with an ``xmlUrl``, at any
    depth (folders are outlines too). ValueError when it is not OPML."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not an OPML file: {exc}") from None
    if root.tag.lower() != "opml":
        raise ValueError(f"not an OPML file: the document element is <{root.tag}>")
    feeds = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if url:
            feeds.append(((outline.get("title") or outline.get("text") or "").strip(), url))
    return feeds


def import_opml(
    config: WatchConfig, directory: Path, data: bytes, file: Path | None = None
) -> Added:
    """Every feed of the OPML document not subscribed yet, added as a feed source."""
    known = _urls(config)
    taken = {s.id for s in config.sources}
    entries = []
    skipped = 0
    for _, url in opml_feeds(data):
        if url in known:
            skipped += 1
            continue
        new_id = source_id(url, taken)
        taken.add(new_id)
        known.add(url)
        entries.append({"id": new_id, "type": "feed", "url": url})
    if not entries:
        return Added(file or directory, [], None, skipped)
    target, _ = add_sources(directory, entries, file)
    return Added(target, [e["id"] for e in entries], None, skipped)


def export_opml(config: WatchConfig, now: datetime | None = None) -> str:
    """The feed sources as OPML 2.0 (what feed readers import)."""
    created = format_datetime(now or datetime.now(UTC))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>newsmonitor sources</title><dateCreated>{created}</dateCreated></head>",
        "  <body>",
    ]
    for spec in config.sources:
        if isinstance(spec, FeedSourceSpec):
            lines.append(
                f'    <outline type="rss" text={quoteattr(spec.id)} title={quoteattr(spec.id)}'
                f" xmlUrl={quoteattr(str(spec.url))}/>"
            )
    lines += ["  </body>", "</opml>"]
    return "\n".join(lines) + "\n"
