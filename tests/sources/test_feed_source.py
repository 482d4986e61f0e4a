"""FeedSource against a real local server: what a poll returns and what it keeps for the next."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from monitor.http import FetchLimits, make_client
from monitor.sources.base import FetchResult
from monitor.sources.feed import FeedSource
from tests.sources import http_server as hs
from tests.sources.http_server import Request, Server

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
RSS = (FEEDS / "rss2.xml").read_bytes()
NOW = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
LAST_MODIFIED = "Mon, 05 Jan 2026 10:00:00 GMT"


def source(server: Server, client: httpx.AsyncClient, path: str, **kwargs: Any) -> FeedSource:
    return FeedSource("news", server.url(path), client, clock=NOW.timestamp, **kwargs)


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts feedparser.parse calls (each records the size of what it was given)."""
    calls: list[int] = []
    real = feedparser.parse

    def counting(document: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(document.getvalue()))
        return real(document, *args, **kwargs)

    monkeypatch.setattr(feedparser, "parse", counting)
    return calls


async def test_second_poll_is_conditional_and_a_304_is_not_parsed(
    server: Server, client: httpx.AsyncClient, parse_calls: list[int]
) -> None:
    server.routes["/feed"] = hs.conditional(
        RSS, '"v1"', LAST_MODIFIED, ("Cache-Control", "max-age=300")
    )
    feed = source(server, client, "/feed")

    first = await feed.fetch({})
    assert first.ok and first.status == 200 and not first.not_modified
    assert first.items[0].guid == "urn:example:1001"
    assert first.state == {
        "configured_url": server.url("/feed"),
        "url": "",
        "etag": '"v1"',
        "last_modified": LAST_MODIFIED,
    }
    assert first.max_age_s == 300
    assert first.bytes_read == len(RSS)
    assert len(parse_calls) == 1

    second = await feed.fetch(first.state)
    assert second.ok and second.status == 304 and second.not_modified
    assert second.items == ()
    assert second.state == first.state
    assert len(parse_calls) == 1  # no feedparser call for an unchanged feed
    sent = server.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert "if-none-match" not in server.requests[0].headers


async def test_changed_feed_is_parsed_again(
    server: Server, client: httpx.AsyncClient, parse_calls: list[int]
) -> None:
    server.routes["/feed"] = hs.conditional(RSS, '"v1"', LAST_MODIFIED)
    feed = source(server, client, "/feed")
    first = await feed.fetch({})
    server.routes["/feed"] = hs.conditional(RSS.replace(b"Short teaser", b"New"), '"v2"', "x")
    second = await feed.fetch(first.state)
    assert second.status == 200 and len(second.items) == 3
    assert second.state["etag"] == '"v2"'
    assert len(parse_calls) == 2


async def test_permanent_redirect_moves_the_feed(server: Server, client: httpx.AsyncClient) -> None:
    server.routes["/old"] = hs.redirect(301, "/new")
    server.static("/new", RSS, ("ETag", '"n"'))
    feed = source(server, client, "/old")
    first = await feed.fetch({})
    assert first.ok and first.state["url"] == server.url("/new")
    # relative links resolve against where the document was found, after the redirect
    assert first.items[1].url == server.url("/world/unsc-meeting")
    server.requests.clear()
    second = await feed.fetch(first.state)
    assert second.ok
    assert [r.path for r in server.requests] == ["/new"]  # straight to the new place
    assert second.state["url"] == server.url("/new")


async def test_temporary_redirect_keeps_the_configured_url(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.routes["/feed"] = hs.redirect(302, "/today")
    server.static("/today", RSS)
    first = await source(server, client, "/feed").fetch({})
    assert first.ok and first.state["url"] == ""
    assert [r.path for r in server.requests] == ["/feed", "/today"]


async def test_a_state_for_another_configured_url_is_ignored(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.static("/edited", RSS)
    stale = {"configured_url": "http://elsewhere.invalid/", "url": "http://elsewhere.invalid/x"}
    result = await source(server, client, "/edited").fetch({**stale, "etag": '"old"'})
    assert result.ok
    assert "if-none-match" not in server.requests[0].headers
    assert result.state["configured_url"] == server.url("/edited")


async def test_headers_are_sent(server: Server, client: httpx.AsyncClient) -> None:
    server.static("/feed", RSS)
    await source(server, client, "/feed", headers={"X-Api-Key": "k"}).fetch({})
    sent = server.requests[0].headers
    assert sent["x-api-key"] == "k"
    assert sent["accept"].startswith("application/rss+xml")


async def test_bozo_feed_yields_its_entries_with_the_reason(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.static("/feed", (FEEDS / "malformed.rss").read_bytes())
    result = await source(server, client, "/feed").fetch({})
    assert result.ok and len(result.items) == 2
    assert result.bozo is not None and "not well-formed" in result.bozo


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
            "the feed has no entries",
        ),
        (
            b"<html><body>Not a feed</body></html>",
            "not a feed: no RSS, Atom or RDF document element",
        ),
        (b"", "empty document"),
    ],
)
async def test_a_feed_that_yields_nothing_is_an_error(
    server: Server, client: httpx.AsyncClient, body: bytes, error: str
) -> None:
    server.static("/feed", body, ("ETag", '"e"'))
    result = await source(server, client, "/feed").fetch({"etag": '"previous"'})
    assert result.error == error and result.status == 200
    assert result.state == {"etag": '"previous"'}  # not the new ETag: fetch it again next time


async def test_http_charset_applies_when_the_document_declares_none(
    server: Server, client: httpx.AsyncClient
) -> None:
    body = (
        '<rss version="2.0"><channel><title>t</title><item><title>Caf\u00e9</title>'
        "<guid>1</guid></item></channel></rss>"
    ).encode("latin-1")
    declared = b'<?xml version="1.0" encoding="utf-8"?>' + body.replace(b"\xe9", b"\xc3\xa9")
    server.static("/latin", body, ("Content-Type", "text/xml; charset=ISO-8859-1"))
    server.static("/declared", declared, ("Content-Type", "text/xml; charset=ISO-8859-1"))
    latin = await source(server, client, "/latin").fetch({})
    own = await source(server, client, "/declared").fetch({})
    assert latin.items[0].title == "Café"
    assert own.items[0].title == "Café"  # the document's own declaration wins over the server
    assert own.bozo is None


async def test_missing_dates_become_the_poll_time(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.static("/feed", (FEEDS / "golden" / "no-dates.xml").read_bytes())
    result = await source(server, client, "/feed").fetch({})
    assert {item.published for item in result.items} == {NOW}


async def test_duplicate_guids_are_problems(server: Server, client: httpx.AsyncClient) -> None:
    server.static("/feed", (FEEDS / "golden" / "duplicate-guids.xml").read_bytes())
    result = await source(server, client, "/feed").fetch({})
    assert [item.title for item in result.items] == ["First version", "Another story"]
    assert result.problems == ("entry with a duplicate GUID 'dup-1' (kept the first)",)


async def test_errors_keep_the_state_and_report_retry_after(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.routes["/feed"] = hs.status(429, ("Retry-After", "90"))
    state = {"etag": '"v1"', "configured_url": server.url("/feed")}
    result = await source(server, client, "/feed").fetch(state)
    assert result.error == "HTTP 429 Too Many Requests"
    assert (result.status, result.retry_after_s) == (429, 90.0)
    assert result.state == state
    assert result.items == ()


# --- hostile servers: one source fails, the others on the same server keep polling ---------


def hostile_routes() -> dict[str, hs.Handler]:
    loop_a, loop_b = hs.redirect(302, "/loop-b"), hs.redirect(301, "/loop-a")
    return {
        "/loop-a": loop_a,
        "/loop-b": loop_b,
        "/404": hs.status(404),
        "/410": hs.status(410),
        "/500": hs.status(500),
        "/429": hs.status(429, ("Retry-After", "30")),
        "/reset": hs.reset,
        "/silent": hs.never_answer,
        "/drip": hs.drip(1.0),
        "/huge": hs.endless(50_000_000, with_length=True),
        "/huge-chunked": hs.endless(50_000_000, with_length=False),
        "/bomb": hs.compressed(hs.gzip_bomb(), "gzip"),
        "/bomb-chunked": hs.compressed(hs.gzip_bomb(), "gzip", with_length=False),
    }


HOSTILE = {
    "/loop-a": "redirect loop",
    "/404": "HTTP 404 Not Found",
    "/410": "HTTP 410 Gone",
    "/500": "HTTP 500 Internal Server Error",
    "/429": "HTTP 429 Too Many Requests",
    "/reset": "connection",
    "/silent": "read timeout",
    "/drip": "deadline",
    "/huge": "Content-Length 50,000,000 is above the cap",
    "/huge-chunked": "body larger than the cap",
    "/bomb": "body larger than the cap",
    "/bomb-chunked": "body larger than the cap",
}


@pytest.mark.peak_memory
async def test_every_hostile_source_fails_alone(server: Server) -> None:
    """All the hostile feeds and three good ones polled at once on one server and one client:
    each hostile one ends as its own error within the deadline, the good ones all succeed."""
    limits = FetchLimits(connect_s=2.0, read_s=1.5, total_s=3.0, per_host=16)
    server.routes.update(hostile_routes())
    for name in ("a", "b", "c"):
        server.static(f"/good-{name}", RSS)
    async with make_client(limits, trust_env=False) as client:
        sources = {
            path: FeedSource(path, server.url(path), client, limits, clock=NOW.timestamp)
            for path in [*HOSTILE, "/good-a", "/good-b", "/good-c"]
        }
        started = asyncio.get_running_loop().time()
        results: list[FetchResult] = await asyncio.gather(*(s.fetch({}) for s in sources.values()))
        elapsed = asyncio.get_running_loop().time() - started
    by_path: Mapping[str, FetchResult] = dict(zip(sources, results, strict=True))
    for path, expected in HOSTILE.items():
        result = by_path[path]
        assert result.error is not None and expected in result.error, (path, result.error)
        assert result.items == ()
    for name in ("a", "b", "c"):
        assert by_path[f"/good-{name}"].ok and len(by_path[f"/good-{name}"].items) == 3
    assert by_path["/429"].retry_after_s == 30
    assert elapsed < limits.total_s + 1.5
    assert hs.max_rss_mb() < hs.MAX_RSS_MB


async def test_requests_carry_only_what_the_source_sent(
    server: Server, client: httpx.AsyncClient
) -> None:
    seen: list[Request] = []

    async def record(request: Request, writer: Any) -> None:
        seen.append(request)
        await hs.send(writer, 200, RSS)

    server.routes["/feed"] = record
    await source(server, client, "/feed").fetch({"etag": "", "last_modified": ""})
    assert "if-none-match" not in seen[0].headers
    assert "if-modified-since" not in seen[0].headers


async def test_credentials_never_follow_a_permanent_move_to_another_host(
    server: Server, client: httpx.AsyncClient
) -> None:
    """The configured host gets the auth header; the host it moved to never does, not even on
    later polls that go there directly."""
    elsewhere = await Server().start()
    try:
        server.routes["/feed"] = hs.redirect(301, elsewhere.url("/feed"))
        elsewhere.static("/feed", RSS, ("ETag", '"x"'))
        feed = FeedSource(
            "moved", server.url("/feed"), client, headers={"Authorization": "Bearer s3cr3t"}
        )
        first = await feed.fetch({})
        assert first.ok and first.state["url"] == elsewhere.url("/feed")
        second = await feed.fetch(first.state)
        assert second.ok
        assert server.requests[0].headers.get("authorization") == "Bearer s3cr3t"
        assert len(elsewhere.requests) == 2
        assert all("authorization" not in r.headers for r in elsewhere.requests)
    finally:
        await elsewhere.close()
