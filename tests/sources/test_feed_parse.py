"""parse_feed: RSS 2.0, Atom, RDF and JSON Feed bytes into Items, without any I/O."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import SourceError
from monitor.sources.feed import ParsedFeed, item_id, parse_feed

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
ID = re.compile(r"^news:[0-9a-f]{16}$")


def parse(name: str, url: str | None = "https://news.example.org/rss") -> ParsedFeed:
    return parse_feed((FEEDS / name).read_bytes(), "news", url)


def test_rss2() -> None:
    feed = parse("rss2.xml")
    assert feed.bozo is None
    first, relative, anonymous = feed.items

    assert first.id == item_id("news", "urn:example:1001")
    assert first.id == "news:" + hashlib.sha256(b"urn:example:1001").hexdigest()[:16]
    assert first.guid == "urn:example:1001"
    assert first.source == "news"
    assert first.title == "Lavrov & Rodríguez hold phone call"
    # content:encoded is longer than the description, so it is the text; the script is gone.
    assert first.text == (
        "Russian Foreign Minister Sergey Lavrov held a phone call with Delcy Rodríguez.\n\n"
        "Both sides called for dialogue & restraint."
    )
    assert first.url == "https://news.example.org/world/lavrov-call"
    assert first.published == datetime(2026, 1, 3, 14, 10, tzinfo=UTC)
    assert first.authors == ("Anna Petrova",)
    assert first.tags == ("World", "Venezuela")
    assert first.language == "en-us"
    assert first.path is None

    # No guid: the link (made absolute against the feed URL) is the guid.
    assert relative.url == "https://news.example.org/world/unsc-meeting"
    assert relative.guid == relative.url
    assert relative.published is None
    assert relative.text == "The UN Security Council will meet on Monday."

    # Neither guid nor link: a hash of title and date.
    assert anonymous.url is None
    assert anonymous.guid is not None
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous.guid)
    assert anonymous.published == datetime(2026, 1, 4, 8, 0, tzinfo=UTC)
    assert all(ID.match(item.id) for item in feed.items)
    assert len({item.id for item in feed.items}) == 3


def test_rss2_ids_are_stable_and_content_independent() -> None:
    data = (FEEDS / "rss2.xml").read_bytes()
    edited = data.replace(b"Short teaser.", b"A rewritten teaser.")
    assert [i.id for i in parse_feed(data, "news").items] == [
        i.id for i in parse_feed(edited, "news").items
    ]
    assert parse_feed(data, "other").items[0].id != parse_feed(data, "news").items[0].id


def test_relative_link_without_feed_url_uses_channel_link() -> None:
    feed = parse("rss2.xml", url=None)
    assert feed.items[1].url == "https://news.example.org/world/unsc-meeting"


def test_atom() -> None:
    feed = parse("atom.xml", url=None)
    assert feed.bozo is None
    german, english = feed.items
    assert german.guid == "urn:example:entry:1"
    assert german.title == "Moskau fordert Freilassung Maduros"
    assert german.text == (
        "Das russische Außenministerium forderte am Samstag die Freilassung.\n\nZweiter Absatz."
    )
    assert german.url == "https://de.example.org/maduro"
    assert german.published == datetime(2026, 1, 3, 9, 30, tzinfo=UTC)  # updated, in UTC
    assert german.authors == ("Hans Müller", "Eva Schmidt")
    assert german.tags == ("Politik",)
    assert german.language == "de"

    assert english.published == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)  # published wins
    assert english.language == "en"
    assert english.url is None  # an urn: id is not a link


def test_rdf() -> None:
    (item,) = parse("rdf.rdf").items
    assert item.title == "Moscou condamne les frappes au Venezuela"
    assert item.text == "La diplomatie russe a dénoncé une « agression armée »."
    assert item.url == "https://fr.example.org/a/1"
    assert item.guid == "https://fr.example.org/a/1"
    assert item.published == datetime(2026, 1, 3, 17, 0, tzinfo=UTC)
    assert item.authors == ("Claire Dubois",)
    assert item.tags == ("International",)
    assert item.language == "fr"


def test_json_feed() -> None:
    feed = parse("feed.json", url=None)
    assert feed.bozo is None
    html_item, text_item, bare = feed.items

    assert html_item.id == item_id("news", "2001")
    assert html_item.title == "Maduro flown to New York"
    assert (
        html_item.text
        == "Venezuelan leader Nicolás Maduro was flown to New York.\n\nHe faces charges."
    )
    assert html_item.url == "https://json.example.org/posts/maduro"
    assert html_item.published == datetime(2026, 1, 4, 1, 15, tzinfo=UTC)
    assert html_item.authors == ("Maria Lopez", "John Smith")
    assert html_item.tags == ("Venezuela", "Courts")
    assert html_item.language == "es"

    assert text_item.guid == "2002"  # a numeric id
    assert text_item.text == "A plain text body with a < sign and <not a tag>."  # not HTML
    assert text_item.url == "https://json.example.org/posts/text-only"
    assert text_item.authors == ("Desk",)  # the feed's authors
    assert text_item.language == "en"  # the feed's language

    assert bare.guid == "https://json.example.org/posts/no-id"
    assert bare.title == ""
    assert bare.text == "Only a summary."
    assert bare.published is None


def test_json_feed_version_1() -> None:
    (item,) = parse("feed-v1.json").items
    assert item.authors == ("Old Timer",)
    assert item.published == datetime(2026, 1, 3, 10, 0, tzinfo=UTC)  # naive means UTC
    assert item.text == "Written by one author."


def test_malformed_but_readable() -> None:
    feed = parse("malformed.rss")
    assert feed.bozo is not None
    assert "not well-formed" in feed.bozo
    assert [item.title for item in feed.items] == ["Lavrov & Rodriguez talk", "Second story"]
    assert feed.items[0].published == datetime(2026, 1, 3, 12, 0, tzinfo=UTC)


def test_truncated_feed_keeps_what_was_read() -> None:
    feed = parse_feed(b"<rss><channel><item><title>Whole title</title><description>cut", "news")
    assert feed.bozo is not None
    assert [item.title for item in feed.items] == ["Whole title"]


def test_empty_valid_feed() -> None:
    data = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    assert parse_feed(data, "news") == ParsedFeed((), None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b"this is not a feed at all", "not a readable feed"),
        (b"<rss><channel><title>cut off", "not a readable feed"),
        (b"<html><body><h1>Not found</h1></body></html>", "not a feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": ', "invalid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', "items"),
        (b'{"title": "not a feed"}', "not a JSON Feed"),
    ],
)
def test_unreadable_documents_raise(data: bytes, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        parse_feed(data, "news")


def test_never_opens_a_path_or_url(tmp_path: Path) -> None:
    """Bytes that spell a file name or a URL are parsed as content, never opened or fetched."""
    feed_file = tmp_path / "feed.xml"
    feed_file.write_bytes((FEEDS / "rss2.xml").read_bytes())
    for data in (str(feed_file).encode(), b"http://127.0.0.1:9/feed.xml"):
        with pytest.raises(SourceError):
            parse_feed(data, "news")


def test_a_feed_provided_canonical_link_is_the_item_url() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:x</id>
<updated>2026-01-03T10:00:00Z</updated>
<entry><title>Story</title><id>urn:story:1</id><updated>2026-01-03T10:00:00Z</updated>
<link rel="alternate" href="https://mirror.example/story?utm_source=atom"/>
<link rel="canonical" href="https://news.example/2026/01/03/story"/>
<summary>The council met.</summary></entry></feed>"""
    [item] = parse_feed(atom, "atom").items
    assert item.url == "https://news.example/2026/01/03/story"
