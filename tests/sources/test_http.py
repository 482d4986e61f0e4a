"""fetch_url against a real local server: conditional GET, redirects, statuses, caps, timeouts.

Every hostile case must end as an error value for that fetch alone, within the limits, while
a well-behaved route on the same server keeps answering, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import tracemalloc
import zlib
from dataclasses import replace
from datetime import UTC, datetime

import brotli  # type: ignore[import-untyped]
import httpx
import pytest

from monitor import __version__
from monitor.errors import FetchErrorKind
from monitor.http import (
    DEFAULT_LIMITS,
    USER_AGENT,
    Download,
    FetchLimits,
    address_class,
    fetch_url,
    make_client,
    parse_max_age,
    parse_retry_after,
)
from monitor.sources.conditional import next_state, resume_state
from tests.sources import http_server as hs
from tests.sources.http_server import Request, Server

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>ok</title></channel></rss>'


async def test_user_agent_and_encodings(server: Server, client: httpx.AsyncClient) -> None:
    server.static("/feed", FEED)
    download = await fetch_url(client, server.url("/feed"))
    assert download.error is None
    assert download.body == FEED
    (request,) = server.requests
    assert request.headers["user-agent"] == USER_AGENT
    expected = f"newsmonitor/{__version__} (+https://github.com/newsmonitor/newsmonitor)"
    assert expected == USER_AGENT
    assert request.headers["accept-encoding"] == "gzip, deflate, br"


async def test_conditional_get(server: Server, client: httpx.AsyncClient) -> None:
    server.routes["/feed"] = hs.conditional(
        FEED, '"v1"', "Mon, 05 Jan 2026 10:00:00 GMT", ("Cache-Control", "public, max-age=600")
    )
    first = await fetch_url(client, server.url("/feed"))
    assert (first.status, first.etag, first.last_modified) == (
        200,
        '"v1"',
        "Mon, 05 Jan 2026 10:00:00 GMT",
    )
    assert first.max_age_s == 600
    second = await fetch_url(
        client, server.url("/feed"), etag=first.etag, last_modified=first.last_modified
    )
    assert second.not_modified and second.status == 304 and second.body == b""
    assert second.max_age_s == 600
    sent = server.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Mon, 05 Jan 2026 10:00:00 GMT"
    assert "if-none-match" not in server.requests[0].headers


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
)
async def test_content_encodings(
    server: Server, client: httpx.AsyncClient, encoding: str, encode: object
) -> None:
    body = FEED * 500
    assert callable(encode)
    server.routes["/feed"] = hs.compressed(encode(body), encoding)
    download = await fetch_url(client, server.url("/feed"))
    assert download.error is None
    assert download.body == body


async def test_unknown_content_encoding_is_an_error(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.routes["/feed"] = hs.compressed(b"whatever", "zstd")
    download = await fetch_url(client, server.url("/feed"))
    assert download.error == "unsupported Content-Encoding 'zstd'"


# --- redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "permanent"), [(301, True), (302, False), (307, False), (308, True)]
)
async def test_redirects(
    server: Server, client: httpx.AsyncClient, code: int, permanent: bool
) -> None:
    server.routes["/old"] = hs.redirect(code, "/new")
    server.static("/new", FEED)
    download = await fetch_url(client, server.url("/old"))
    assert download.error is None and download.body == FEED
    assert download.url == server.url("/new")
    assert download.moved_to == (server.url("/new") if permanent else None)


async def test_permanent_then_temporary_remembers_the_permanent_hop(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.routes["/a"] = hs.redirect(301, "/b")
    server.routes["/b"] = hs.redirect(302, "/c")
    server.routes["/c"] = hs.redirect(308, "/d")
    server.static("/d", FEED)
    download = await fetch_url(client, server.url("/a"))
    assert download.error is None
    assert download.moved_to == server.url("/b")


async def test_redirect_loop(server: Server, client: httpx.AsyncClient) -> None:
    server.routes["/a"] = hs.redirect(302, "/b")
    server.routes["/b"] = hs.redirect(301, "/a")
    download = await fetch_url(client, server.url("/a"))
    assert download.error is not None and "redirect loop" in download.error
    assert download.error_kind is FetchErrorKind.REDIRECT
    assert len(server.requests) == 2


async def test_at_most_five_redirects(server: Server, client: httpx.AsyncClient) -> None:
    for hop in range(7):
        server.routes[f"/r{hop}"] = hs.redirect(302, f"/r{hop + 1}")
    server.static("/r5", FEED)
    assert (await fetch_url(client, server.url("/r0"))).body == FEED  # exactly five hops
    server.requests.clear()
    server.routes["/r5"] = hs.redirect(302, "/r6")
    server.static("/r6", FEED)
    download = await fetch_url(client, server.url("/r0"))
    assert download.error == "more than 5 redirects"
    assert download.error_kind is FetchErrorKind.REDIRECT
    assert len(server.requests) == 6


async def test_redirect_without_location_or_to_another_scheme(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.routes["/nowhere"] = hs.status(302)
    server.routes["/file"] = hs.redirect(301, "file:///etc/passwd")
    assert (await fetch_url(client, server.url("/nowhere"))).error == (
        "HTTP 302 redirect without a Location"
    )
    error = (await fetch_url(client, server.url("/file"))).error
    assert error == "refusing to fetch a file URL"
    assert (await fetch_url(client, server.url("/file"))).error_kind is FetchErrorKind.INVALID_URL


async def test_configured_headers_stay_with_their_origin(
    server: Server, client: httpx.AsyncClient
) -> None:
    other = await Server().start()
    try:
        other.static("/feed", FEED)
        server.routes["/feed"] = hs.redirect(302, other.url("/feed"))
        download = await fetch_url(
            client,
            server.url("/feed"),
            headers={"Authorization": "Bearer secret", "Accept": "application/rss+xml"},
        )
        assert download.error is None
        assert server.requests[0].headers["authorization"] == "Bearer secret"
        assert "authorization" not in other.requests[0].headers
        assert other.requests[0].headers["accept"] == "application/rss+xml"
    finally:
        await other.close()


# --- statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (404, "HTTP 404 Not Found: nothing at this URL"),
        (410, "HTTP 410 Gone: removed for good, says the server"),
        (500, "HTTP 500 Internal Server Error"),
        (503, "HTTP 503 Service Unavailable"),
    ],
)
async def test_error_statuses(
    server: Server, client: httpx.AsyncClient, code: int, reason: str
) -> None:
    server.routes["/feed"] = hs.status(code)
    download = await fetch_url(client, server.url("/feed"))
    assert (download.status, download.error) == (code, reason)
    assert download.error_kind is FetchErrorKind.of_status(code)
    assert download.error_kind in (FetchErrorKind.HTTP_4XX, FetchErrorKind.HTTP_5XX)
    assert download.retry_after_s is None


async def test_429_retry_after_seconds_and_date(server: Server, client: httpx.AsyncClient) -> None:
    server.routes["/seconds"] = hs.status(429, ("Retry-After", "120"))
    now = time.time()
    server.routes["/date"] = hs.status(
        503, ("Retry-After", hs.http_date(now + 300)), ("Date", hs.http_date(now))
    )
    seconds = await fetch_url(client, server.url("/seconds"))
    assert (seconds.status, seconds.error, seconds.retry_after_s) == (
        429,
        "HTTP 429 Too Many Requests",
        120.0,
    )
    dated = await fetch_url(client, server.url("/date"))
    assert dated.retry_after_s is not None and 298 <= dated.retry_after_s <= 301


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Wed, 07 Jan 2026 12:10:00 GMT", 600.0),
        ("Wed, 07 Jan 2026 11:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
        ("-5", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, datetime(2026, 1, 7, 12, 0, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=300", 300.0),
        ("public, max-age=60, must-revalidate", 60.0),
        ('max-age="90"', 90.0),
        ("s-maxage=100", None),
        ("no-cache", None),
        (None, None),
    ],
)
def test_parse_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected


# --- hostile servers ----------------------------------------------------------------------


async def fetch_beside_a_good_route(
    server: Server, client: httpx.AsyncClient, path: str, limits: FetchLimits
) -> tuple[Download, Download]:
    """The hostile ``path`` and a good route on the same server, at the same time."""
    server.static("/good", FEED)
    hostile, good = await asyncio.gather(
        fetch_url(client, server.url(path), limits=limits),
        fetch_url(client, server.url("/good"), limits=limits),
    )
    assert good.error is None and good.body == FEED
    return hostile, good


async def test_connection_reset(
    server: Server, client: httpx.AsyncClient, limits: FetchLimits
) -> None:
    server.routes["/feed"] = hs.reset
    hostile, _ = await fetch_beside_a_good_route(server, client, "/feed", limits)
    assert hostile.error is not None
    assert hostile.error.startswith(("connection error", "connection closed by the server"))
    assert hostile.error_kind is FetchErrorKind.CONNECTION


async def test_server_that_never_answers(
    server: Server, client: httpx.AsyncClient, limits: FetchLimits
) -> None:
    server.routes["/feed"] = hs.never_answer
    started = time.monotonic()
    hostile, _ = await fetch_beside_a_good_route(server, client, "/feed", limits)
    assert hostile.error == "read timeout: no data for 1 s"
    assert hostile.error_kind is FetchErrorKind.TIMEOUT
    assert time.monotonic() - started < limits.total_s


async def test_drip_is_stopped_by_the_total_deadline(
    server: Server, client: httpx.AsyncClient
) -> None:
    limits = FetchLimits(read_s=2.0, total_s=2.5)  # a byte a second never trips the read timeout
    server.routes["/feed"] = hs.drip(1.0)
    started = time.monotonic()
    hostile, _ = await fetch_beside_a_good_route(server, client, "/feed", limits)
    assert hostile.error == "no complete answer within the 2.5 s deadline"
    assert hostile.error_kind is FetchErrorKind.TIMEOUT
    assert 2.4 <= time.monotonic() - started < 4.0


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://[::1", "invalid URL"),
        ("ftp://example.org/feed", "refusing to fetch a ftp URL"),
        ("/relative/feed", "refusing to fetch a relative URL"),
    ],
)
async def test_unusable_urls(client: httpx.AsyncClient, url: str, error: str) -> None:
    download = await fetch_url(client, url)
    assert download.error is not None and download.error.startswith(error)
    assert download.error_kind is FetchErrorKind.INVALID_URL


async def test_connection_refused(client: httpx.AsyncClient) -> None:
    with socket_closed_port() as port:
        download = await fetch_url(client, f"http://127.0.0.1:{port}/feed")
    assert download.status is None
    assert download.error is not None and download.error.startswith("cannot connect")
    assert download.error_kind is FetchErrorKind.CONNECTION


class socket_closed_port:
    """A port nothing listens on (bound, never listening, so nobody else takes it meanwhile)."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.peak_memory
async def test_oversized_content_length_is_refused_unread(
    server: Server, client: httpx.AsyncClient, limits: FetchLimits
) -> None:
    server.routes["/feed"] = hs.endless(50_000_000, with_length=True)
    hostile, _ = await fetch_beside_a_good_route(server, client, "/feed", limits)
    assert hostile.error == (
        "Content-Length 50,000,000 is above the cap of 10,000,000 bytes; not read"
    )
    assert hostile.error_kind is FetchErrorKind.TOO_LARGE
    assert hostile.body == b""
    assert hs.max_rss_mb() < hs.MAX_RSS_MB


@pytest.mark.peak_memory
async def test_endless_body_is_cut_at_the_cap(
    server: Server, client: httpx.AsyncClient, limits: FetchLimits
) -> None:
    server.routes["/feed"] = hs.endless(50_000_000, with_length=False)
    hostile, _ = await fetch_beside_a_good_route(server, client, "/feed", limits)
    assert hostile.error == "body larger than the cap of 10,000,000 bytes (decompressed)"
    assert hs.max_rss_mb() < hs.MAX_RSS_MB


@pytest.mark.peak_memory
@pytest.mark.parametrize("with_length", [True, False])
@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_decompression_bomb_stops_at_the_cap(
    server: Server, client: httpx.AsyncClient, limits: FetchLimits, encoding: str, with_length: bool
) -> None:
    """1 GB of zeros in 1 MB of gzip (or 2 KB of brotli): read until 10 MB came out, no more."""
    bomb = hs.gzip_bomb() if encoding == "gzip" else hs.brotli_bomb()
    server.routes["/feed"] = hs.compressed(bomb, encoding, with_length=with_length)
    tracemalloc.start()
    try:
        hostile, _ = await fetch_beside_a_good_route(server, client, "/feed", limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert hostile.error == "body larger than the cap of 10,000,000 bytes (decompressed)"
    assert peak < 40_000_000  # the capped body, a bytes copy of it, and 64 KiB pieces
    assert hs.max_rss_mb() < hs.MAX_RSS_MB


async def test_at_most_two_requests_per_host(server: Server, limits: FetchLimits) -> None:
    active = 0
    most = 0

    async def slow(request: Request, writer: asyncio.StreamWriter) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.2)
        active -= 1
        await hs.send(writer, 200, FEED)

    server.routes["/slow"] = slow
    async with make_client(limits, trust_env=False) as client:
        results = await asyncio.gather(
            *(fetch_url(client, server.url("/slow"), limits=limits) for _ in range(6))
        )
    assert all(r.error is None for r in results)
    assert most == 2


async def test_the_deadline_does_not_count_the_wait_for_a_host_slot(server: Server) -> None:
    """Three slow answers through one slot: each is within its deadline, though queued."""
    limits = FetchLimits(read_s=2.0, total_s=1.0, per_host=1)

    async def slow(request: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.6)
        await hs.send(writer, 200, FEED)

    server.routes["/slow"] = slow
    async with make_client(limits, trust_env=False) as client:
        results = await asyncio.gather(
            *(fetch_url(client, server.url("/slow"), limits=limits) for _ in range(3))
        )
    assert [r.error for r in results] == [None, None, None]


# --- state ----------------------------------------------------------------------------------


def test_resume_state_ignores_a_state_recorded_for_another_url() -> None:
    state = {
        "configured_url": "https://a.example/feed",
        "url": "https://b.example/feed",
        "etag": '"x"',
        "last_modified": "",
    }
    assert resume_state(state, "https://a.example/feed") == ("https://b.example/feed", '"x"', None)
    assert resume_state(state, "https://c.example/feed") == ("https://c.example/feed", None, None)
    assert resume_state({}, "https://c.example/feed") == ("https://c.example/feed", None, None)


def test_next_state_after_200_304_and_a_move() -> None:
    configured = "https://a.example/feed"
    fresh = Download(configured, status=200, etag='"2"', last_modified=None)
    assert next_state(fresh, {"etag": '"1"', "last_modified": "old"}, configured) == {
        "configured_url": configured,
        "url": "",
        "etag": '"2"',
        "last_modified": "",
    }
    same = Download(configured, status=304, not_modified=True)
    kept = next_state(same, {"etag": '"1"', "last_modified": "old"}, configured)
    assert (kept["etag"], kept["last_modified"]) == ('"1"', "old")
    moved = Download("https://b.example/", status=200, moved_to="https://b.example/")
    assert next_state(moved, {}, configured)["url"] == "https://b.example/"


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fe80::1]/x",
        "http://0.0.0.0:9/x",
        "http://[::ffff:169.254.169.254]/x",
    ],
)
async def test_a_redirect_into_link_local_space_is_refused_before_connecting(
    server: Server, client: httpx.AsyncClient, location: str
) -> None:
    server.routes["/feed"] = hs.redirect(302, location)
    download = await fetch_url(client, server.url("/feed"))
    assert download.error_kind is FetchErrorKind.REDIRECT
    assert download.error is not None
    assert "refusing a redirect from a loopback address to a link-local one" in download.error
    assert len(server.requests) == 1
    allowed = replace(DEFAULT_LIMITS, private_redirects=True, connect_s=0.5, total_s=2)
    opened = await fetch_url(client, server.url("/feed"), limits=allowed)
    assert opened.error_kind is not FetchErrorKind.REDIRECT  # it tried (and failed to connect)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", 0),
        ("2606:2800:220:1::", 0),
        ("10.1.2.3", 1),
        ("192.168.0.1", 1),
        ("100.64.0.1", 1),
        ("fd00::1", 1),
        ("127.0.0.1", 2),
        ("::1", 2),
        ("localhost", 2),
        ("169.254.169.254", 3),
        ("::ffff:169.254.169.254", 3),
        ("0.0.0.0", 3),
        ("news.example", 0),
    ],
)
def test_addresses_are_ranked_from_public_to_link_local(address: str, kind: int) -> None:
    assert address_class(address) == kind


async def test_a_redirect_between_loopback_addresses_is_followed(
    server: Server, client: httpx.AsyncClient
) -> None:
    server.routes["/feed"] = hs.redirect(302, server.url("/real").replace("127.0.0.1", "localhost"))
    server.static("/real", FEED)
    download = await fetch_url(client, server.url("/feed"))
    assert download.error is None and download.body == FEED
