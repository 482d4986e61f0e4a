"""Hostile XML: external entities read nothing and fetch nothing; entity bombs cannot expand.

The bombs run in a child process with an address-space limit, so a regression fails the test
(too slow, too much memory, or killed) instead of taking the test run down with it.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import feedparser
import pytest

from monitor.channels.console import alert_line
from monitor.errors import SourceError
from monitor.sources.feed import feed_items, parse_feed
from tests.children import run_child
from tests.factories import make_alert
from tests.sources.http_server import Server

SECRET = "TOP-SECRET-7f3a9c"
CHANNEL = (
    '<rss version="2.0"><channel><title>t</title><item><guid>1</guid>{body}</item></channel></rss>'
)


def fields(data: bytes) -> str:
    """Every text of every item, joined, to search for leaks."""
    feed = parse_feed(data, "evil")
    assert feed.items, "the feed should still be read"
    return json.dumps([item.to_dict() for item in feed.items], ensure_ascii=False)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_external_entity_does_not_read_local_files(secret_file: Path, encoding: str) -> None:
    uri = secret_file.as_uri()
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f'<!DOCTYPE rss [ <!ENTITY xxe SYSTEM "{uri}"> ]>\n'
        + CHANNEL.format(body="<title>Leak: &xxe;</title><description>&xxe;</description>")
    )
    data = document.encode(encoding)
    text = fields(data)
    assert SECRET not in text
    assert "Leak" in text
    assert "DOCTYPE internal subset removed" in (parse_feed(data, "evil").bozo or "")


def test_parameter_entity_and_external_dtd_read_nothing(secret_file: Path) -> None:
    uri = secret_file.as_uri()
    with_parameter = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [ <!ENTITY % p SYSTEM "{uri}"> %p; ]>\n'
        + CHANNEL.format(body="<title>Parameter</title>")
    )
    external_dtd = f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{uri}">\n' + CHANNEL.format(
        body="<title>External DTD</title>"
    )
    for document in (with_parameter, external_dtd):
        assert SECRET not in fields(document.encode())


async def test_external_entities_fetch_nothing(server: Server) -> None:
    server.static("/evil.dtd", b'<!ENTITY remote "fetched">')
    server.static("/entity", b"fetched")
    document = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{server.url("/evil.dtd")}" [\n'
        f'  <!ENTITY ext SYSTEM "{server.url("/entity")}">\n]>\n'
        + CHANNEL.format(body="<title>&ext; &remote;</title>")
    )
    text = await asyncio.to_thread(fields, document.encode())
    await asyncio.sleep(0.2)  # a request in flight would have arrived by now
    assert server.requests == []
    assert "fetched" not in text


def test_an_entity_declaration_outside_the_doctype_is_refused() -> None:
    stray = b'<?xml version="1.0"?>\n<!DOCTYPE rss>\n<!ENTITY a "' + b"a" * 100 + b'">\n'
    with pytest.raises(SourceError, match="ENTITY declaration outside a DOCTYPE"):
        parse_feed(stray + CHANNEL.format(body="<title>&a;</title>").encode(), "evil")
    commented = b'<?xml version="1.0"?>\n<!--\n<!ENTITY a "x">\n-->\n<!DOCTYPE rss>\n'
    with pytest.raises(SourceError, match="ENTITY"):
        parse_feed(commented + CHANNEL.format(body="<title>&a;</title>").encode(), "evil")


def test_unterminated_doctype_is_refused() -> None:
    with pytest.raises(SourceError, match="unterminated DOCTYPE"):
        parse_feed(b'<?xml version="1.0"?><!DOCTYPE rss [ <!ENTITY a "b"> ', "evil")


def test_entity_markup_inside_an_article_is_just_text() -> None:
    """A security blog quoting an XXE payload in its content is an ordinary feed."""
    body = (
        "<title>XXE explained</title><description><![CDATA[<p>Payload: "
        '<code>&lt;!ENTITY xxe SYSTEM "file:///etc/passwd"&gt;</code></p>]]></description>'
    )
    (item,) = parse_feed(CHANNEL.format(body=body).encode(), "blog").items
    assert item.text == 'Payload: <!ENTITY xxe SYSTEM "file:///etc/passwd">'


def test_a_plain_doctype_is_left_alone() -> None:
    netscape = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
    )
    feed = parse_feed((netscape + CHANNEL.format(body="<title>Old</title>")).encode(), "old")
    assert feed.bozo is None
    assert [item.title for item in feed.items] == ["Old"]


# --- entity bombs, in a child process -------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
    + CHANNEL.format(body="<title>&lol9;</title><description>&lol9;</description>")
)
QUADRATIC = (  # one line per declaration, the shape feedparser's own filter lets through
    '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "'
    + "a" * 100_000
    + '">\n]>\n'
    + CHANNEL.format(body="<title>q</title><description>" + "&a;" * 100_000 + "</description>")
)
CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from monitor.errors import SourceError
    from monitor.sources.feed import parse_feed
    data = sys.stdin.buffer.read()
    started = time.monotonic()
    try:
        feed = parse_feed(data, "bomb")
        outcome = {"items": len(feed.items), "text": max(len(i.text) for i in feed.items),
                   "bozo": feed.bozo}
    except SourceError as exc:
        outcome = {"error": str(exc)}
    outcome["seconds"] = time.monotonic() - started
    outcome["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(outcome))
    """
)


@pytest.mark.peak_memory  # a child inherits the peak of the process that forks it
@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, QUADRATIC], ids=["billion-laughs", "quadratic"])
def test_entity_bombs_finish_fast_in_bounded_memory(bomb: str) -> None:
    outcome = run_child(CHILD, bomb.encode(), timeout=30)
    assert outcome["seconds"] < 5
    assert outcome["max_rss_mb"] < 300
    assert "error" not in outcome, outcome
    assert outcome["items"] == 1
    assert outcome["text"] < len(bomb)  # nothing was expanded
    assert "DOCTYPE internal subset removed" in outcome["bozo"]


GOOD_ENTRY = "<item><title>Good one</title><link>https://example.com/a</link><guid>a</guid></item>"


def rss(*entries: str, declaration: str = '<?xml version="1.0"?>') -> str:
    channel = f"<channel><title>t</title>{''.join(entries)}</channel>"
    return f'{declaration}<rss version="2.0">{channel}</rss>'


@pytest.mark.parametrize(
    ("document", "kept", "noted"),
    [
        # urljoin raises "Invalid IPv6 URL": the entry stays, without a link.
        (
            rss(GOOD_ENTRY, "<item><title>Bad</title><link>http://[x/</link><guid>b</guid></item>"),
            2,
            None,
        ),
        # A character reference beyond Unicode: the parser would raise; it becomes U+FFFD.
        (rss(GOOD_ENTRY, "<item><title>Bad &#x110000; t</title><guid>b</guid></item>"), 2, None),
        (rss(GOOD_ENTRY, "<item><title>Bad &#0; &#55296; t</title><guid>b</guid></item>"), 2, None),
        # Encoding declarations that cannot be used: read as UTF-8, said so.
        (rss(GOOD_ENTRY, declaration='<?xml version="1.0" encoding="\xe0tf-8"?>'), 1, "encoding"),
        (rss(GOOD_ENTRY, declaration='<?xml version="1.0" encoding="utf\x00-8"?>'), 1, "encoding"),
    ],
)
def test_one_malformed_entry_or_declaration_never_costs_the_rest(
    document: str, kept: int, noted: str | None
) -> None:
    parsed = parse_feed(document.encode("latin-1"), "s", "https://example.com/feed")
    assert len(parsed.items) == kept
    assert parsed.items[0].title == "Good one" and parsed.items[0].url == "https://example.com/a"
    if kept == 2:
        assert parsed.items[1].url is None or parsed.items[1].url.startswith("https://")
        assert "\ufffd" in parsed.items[1].title or parsed.items[1].title == "Bad"
    if noted:
        assert parsed.bozo is not None and noted in parsed.bozo


def test_an_entry_that_cannot_be_read_is_skipped_and_named() -> None:
    """Whatever a feed entry does to the extraction, the other entries go through and the
    skipped one is a problem with its position and reason."""
    document = feedparser.parse(rss(GOOD_ENTRY, GOOD_ENTRY.replace(">a<", ">b<")).encode())
    document.entries[1] = "not an entry"  # what a parser bug can hand over
    items, skipped = feed_items(document, "s", "https://example.com/feed", None)
    assert [item.title for item in items] == ["Good one"]
    assert len(skipped) == 1 and skipped[0].startswith("entry 2 skipped: AttributeError")


def test_feed_text_cannot_drive_a_terminal_or_reverse_what_it_shows() -> None:
    """ESC sequences, C1 controls, carriage returns and the right-to-left override never leave
    a feed: not in items, not on the console."""
    title = "Breaking\x1b[2J\x1b]0;pwned\x07 news \u202egnp.exe\u202c \x9b31m"
    text = "Line one\r\nLine two\rLine three\u2066isolated\u2069\x00"
    document = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        f"<title><![CDATA[{title}]]></title><description><![CDATA[{text}]]></description>"
        "<guid>1</guid></item></channel></rss>"
    )
    [item] = parse_feed(document.encode(), "s").items
    line = alert_line(make_alert(item=item))
    for shown in (item.title, item.text, line):
        assert not any(c in shown for c in "\x1b\x07\x9b\r\u202e\u202c\u2066\u2069\x00")
    assert item.title.startswith("Breaking[2J]0;pwned news gnp.exe")
    assert item.text == "Line one\nLine two\nLine threeisolated"
