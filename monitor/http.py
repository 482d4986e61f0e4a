"""HTTP for the sources: one shared client, bounded in every dimension a server can abuse.

A source asks ``fetch_url`` for a URL and gets a ``Download`` back, never an exception: a
response status, a timeout, a reset connection, a redirect loop or an oversized body all become
``Download.error`` with a reason a person can act on. What is bounded:

* time: connect and read timeouts per request, and a total deadline per poll that also stops
  servers that drip a byte at a time (the deadline starts once a connection slot is free, so a
  busy host queues its feeds instead of failing them);
* size: a Content-Length above the cap is refused before reading, and the body is read as a
  stream, decompressed here in pieces of at most 64 KiB and cut at the cap, counted on the
  decompressed bytes: a gzip or brotli bomb stops after ``max_bytes`` with bounded memory;
* concurrency: at most ``per_host`` requests per host and ``max_connections`` in all, per client;
* redirects: followed by hand, at most ``max_redirects``, loops refused, a permanent chain
  reported so the caller can remember the new URL; configured headers (credentials) are not
  sent to another origin.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import re
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import brotli  # type: ignore[import-untyped]
import httpx

from monitor import __version__
from monitor.errors import FetchError, FetchErrorKind

__all__ = [
    "ACCEPT_ENCODING",
    "USER_AGENT",
    "Download",
    "FetchLimits",
    "fetch_url",
    "make_client",
    "parse_max_age",
    "parse_retry_after",
]

USER_AGENT = f"newsmonitor/{__version__} (+https://github.com/newsmonitor/newsmonitor)"
ACCEPT_ENCODING = "gzip, deflate, br"
_PIECE = 64 * 1024  # the most one decompression step may produce
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_SAFE_ANYWHERE = frozenset({"accept", "accept-language"})  # configured headers kept cross-origin
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How long, how much and how many: every bound of a fetch, with the documented defaults."""

    connect_s: float = 10.0
    read_s: float = 20.0
    total_s: float = 60.0
    max_bytes: int = 10_000_000
    per_host: int = 2
    max_connections: int = 100
    max_redirects: int = 5
    private_redirects: bool = False
    """Follow a redirect to a more internal address than the URL's own (public → private,
    loopback or link-local; anything → link-local, where cloud metadata lives)."""

    def timeout(self) -> httpx.Timeout:
        """httpx timeouts for one request; the pool wait is bounded by the total deadline."""
        return httpx.Timeout(self.read_s, connect=self.connect_s, pool=None)


DEFAULT_LIMITS = FetchLimits()


def make_client(
    limits: FetchLimits = DEFAULT_LIMITS, *, trust_env: bool = True
) -> httpx.AsyncClient:
    """The one HTTP client all sources share; the caller closes it (``await client.aclose()``).

    ``limits.per_host`` and ``limits.max_connections`` bound the requests in flight through
    this client. Redirects are left to ``fetch_url``, which counts them, spots loops and
    remembers permanent moves. ``trust_env`` honours the usual proxy and CA variables.
    """
    client = httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=limits.timeout(),
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=min(limits.max_connections, 50),
        ),
        trust_env=trust_env,
    )
    _SLOTS[client] = _Slots(limits.per_host, limits.max_connections)
    return client


@dataclass(frozen=True, slots=True)
class Download:
    """What one fetch of one URL gave: a body, a 304, or an error with its reason.

    ``url`` is where the body came from after redirects; ``moved_to`` is set when every
    redirect on the way was permanent (301/308), and is the URL to poll from now on.
    """

    url: str
    status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    not_modified: bool = False
    retry_after_s: float | None = None
    max_age_s: float | None = None
    error: str | None = None
    error_kind: FetchErrorKind | None = None
    elapsed_s: float = 0.0

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the Content-Type, if the server sent one."""
        if not self.content_type:
            return None
        for param in self.content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


# --- header values ------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_max_age(cache_control: str | None) -> float | None:
    """``max-age`` of a Cache-Control header in seconds, or None."""
    if not cache_control:
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def _server_now(response: httpx.Response) -> datetime:
    """The server's idea of now (its Date header), so a Retry-After date survives clock skew."""
    date = response.headers.get("date")
    if date:
        try:
            parsed = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


# --- concurrency --------------------------------------------------------------------------


class _Slots:
    """The semaphores of one client: one per host (``scheme://host:port``) and one overall."""

    def __init__(self, per_host: int, total: int) -> None:
        self.per_host = max(1, per_host)
        self.total = asyncio.Semaphore(max(1, total))
        self.hosts: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def hold(self, url: httpx.URL) -> AsyncIterator[None]:
        key = f"{url.scheme}://{url.host}:{url.port or ''}"
        host = self.hosts.setdefault(key, asyncio.Semaphore(self.per_host))
        async with host, self.total:  # the host first: a queued feed holds no global slot
            yield


_SLOTS: weakref.WeakKeyDictionary[httpx.AsyncClient, _Slots] = weakref.WeakKeyDictionary()


def _slots(client: httpx.AsyncClient, limits: FetchLimits) -> _Slots:
    """The slots of ``client`` (httpx limits connections overall, not per host): those of
    ``make_client``, or for a client made elsewhere, from the first fetch's ``limits``."""
    slots = _SLOTS.get(client)
    if slots is None:
        slots = _SLOTS[client] = _Slots(limits.per_host, limits.max_connections)
    return slots


# --- bounded decompression ----------------------------------------------------------------


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


class _ZlibDecoder:
    """gzip (with concatenated members) or deflate (zlib-wrapped or raw), in bounded pieces."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._zlib: zlib._Decompress | None = (
            zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        )

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:  # deflate: RFC 9110 says zlib-wrapped; some servers send raw
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        while True:
            piece = self._zlib.decompress(data, _PIECE)
            data = self._zlib.unconsumed_tail
            if piece:
                yield piece
            if self._zlib.eof:
                rest = self._zlib.unused_data
                if not (self._gzip and rest.startswith(b"\x1f\x8b")):
                    return  # trailing garbage after the stream is ignored, as browsers do
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
                data = rest + data
                continue
            if not data and len(piece) < _PIECE:
                return

    def finish(self) -> Iterator[bytes]:
        yield from self.feed(b"")


class _BrotliDecoder:
    def __init__(self) -> None:
        self._brotli = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        piece: bytes = self._brotli.process(data, output_buffer_limit=_PIECE)
        if piece:
            yield piece
        while not self._brotli.can_accept_more_data():
            piece = self._brotli.process(b"", output_buffer_limit=_PIECE)
            if not piece:
                return
            yield piece

    def finish(self) -> Iterator[bytes]:
        return iter(())


def _decoders(content_encoding: str | None) -> list[_Decoder]:
    """Decoders in the order to apply them (the reverse of the order the server encoded)."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    decoders: list[_Decoder] = []
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            decoders.append(_ZlibDecoder(gzip=True))
        elif coding == "deflate":
            decoders.append(_ZlibDecoder(gzip=False))
        elif coding == "br":
            decoders.append(_BrotliDecoder())
        elif coding != "identity":
            raise FetchError(FetchErrorKind.PARSE, f"unsupported Content-Encoding {coding!r}")
    return decoders


def _through(decoders: list[_Decoder], data: bytes) -> Iterator[bytes]:
    """``data`` through every decoder, piece by piece, never a whole body in memory."""
    if not decoders:
        if data:
            yield data
        return
    for piece in decoders[0].feed(data):
        yield from _through(decoders[1:], piece)


def _finish(decoders: list[_Decoder]) -> Iterator[bytes]:
    """What the decoders still hold at the end of the body, through the decoders after them."""
    for index, decoder in enumerate(decoders):
        for piece in decoder.finish():
            yield from _through(decoders[index + 1 :], piece)


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, refused (``FetchError``) as soon as it would pass ``max_bytes``."""
    decoders = _decoders(response.headers.get("content-encoding"))
    body = bytearray()
    raw = 0
    too_large = f"body larger than the cap of {max_bytes:,} bytes (decompressed)"
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if raw > max_bytes:
            raise FetchError(FetchErrorKind.TOO_LARGE, too_large)
        for piece in _through(decoders, chunk):
            if len(body) + len(piece) > max_bytes:
                raise FetchError(FetchErrorKind.TOO_LARGE, too_large)
            body += piece
    for piece in _finish(decoders):
        if len(body) + len(piece) > max_bytes:
            raise FetchError(FetchErrorKind.TOO_LARGE, too_large)
        body += piece
    return bytes(body)


# --- the fetch ----------------------------------------------------------------------------


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _reason(status: int, response: httpx.Response) -> str:
    phrase = response.reason_phrase or ""
    if status == 404:
        return "HTTP 404 Not Found: nothing at this URL"
    if status == 410:
        return "HTTP 410 Gone: removed for good, says the server"
    if status == 429:
        return "HTTP 429 Too Many Requests"
    return f"HTTP {status} {phrase}".rstrip()


def _fetch_error(
    exc: httpx.HTTPError | httpx.InvalidURL, limits: FetchLimits, status: int | None
) -> FetchError:
    """A library exception as one line a person can act on, with its kind."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        message = f"connect timeout: no connection within {limits.connect_s:g} s"
        return FetchError(FetchErrorKind.TIMEOUT, message)
    if isinstance(exc, httpx.ReadTimeout):
        return FetchError(FetchErrorKind.TIMEOUT, f"read timeout: no data for {limits.read_s:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(FetchErrorKind.TIMEOUT, f"timeout: {detail}")
    if isinstance(exc, httpx.ConnectError):
        return FetchError(FetchErrorKind.CONNECTION, f"cannot connect: {detail}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchError(FetchErrorKind.CONNECTION, f"connection closed by the server: {detail}")
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        message = f"connection error: {detail} (reset by the server?)"
        return FetchError(FetchErrorKind.CONNECTION, message)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return FetchError(FetchErrorKind.INVALID_URL, f"invalid URL: {detail}")
    # A body that started and then broke is not usable: the same as one that does not parse.
    kind = (
        FetchErrorKind.PARSE if status is not None and 200 <= status < 300 else FetchErrorKind.OTHER
    )
    return FetchError(kind, f"HTTP error: {detail}")


_ADDRESS_CLASSES = ("a public", "a private", "a loopback", "a link-local")


def address_class(address: str) -> int:
    """0 public, 1 private (RFC 1918, unique local, shared), 2 loopback, 3 link-local or
    unspecified (cloud metadata answers there); a host name other than localhost is public."""
    found = _literal_class(address)
    return 0 if found is None else found


def _literal_class(host: str) -> int | None:
    """``address_class`` of an IP literal or localhost; None for any other host name."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return 2 if host.lower() in ("localhost", "localhost.") else None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_unspecified:
        return 3
    if ip.is_loopback:
        return 2
    if ip.is_private or ip in _SHARED:
        return 1
    return 0


_SHARED = ipaddress.ip_network("100.64.0.0/10")


async def _host_class(host: str, loop: asyncio.AbstractEventLoop) -> int:
    """The most internal class among the addresses ``host`` stands for (resolved when it is a
    name; a name that does not resolve counts as public: fetching it fails anyway)."""
    literal = _literal_class(host)
    if literal is not None:
        return literal
    try:
        found = await loop.getaddrinfo(host, None)
    except OSError:
        return 0
    return max((address_class(str(info[4][0])) for info in found), default=0)


async def _refuse_inward(
    start: httpx.URL, target: httpx.URL, limits: FetchLimits, loop: asyncio.AbstractEventLoop
) -> None:
    """A redirect may not lead further in than where the fetch started (a public feed sending
    the poller to 169.254.169.254 or to a service on the host), unless allowed."""
    if limits.private_redirects:
        return
    inside = await _host_class(target.host, loop)
    if not inside:
        return
    outside = await _host_class(start.host, loop)
    if inside > outside or (inside == 3 and outside != 3):
        raise FetchError(
            FetchErrorKind.REDIRECT,
            f"refusing a redirect from {_ADDRESS_CLASSES[outside]} address to"
            f" {_ADDRESS_CLASSES[inside]} one ({target.host})",
        )


async def fetch_url(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: FetchLimits = DEFAULT_LIMITS,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    trusted: str | None = None,
) -> Download:
    """GET ``url`` within ``limits``; a conditional GET when validators are given. Never raises
    for what the server or the network does (cancellation still propagates).

    ``headers`` (credentials) go only to the origin of ``trusted`` (default ``url``): the URL
    the user configured, so a permanent redirect to another host, remembered and polled from
    then on, never receives them."""
    started = time.monotonic()
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return Download(url, error=f"invalid URL: {exc}", error_kind=FetchErrorKind.INVALID_URL)
    slots = _slots(client, limits)
    loop = asyncio.get_running_loop()
    try:
        origin = httpx.URL(trusted) if trusted else current
    except httpx.InvalidURL:
        origin = current
    visited = {str(current)}
    current_start = current
    moved_to: str | None = None
    permanent = True
    status: int | None = None
    retry_after: float | None = None
    request_headers = {"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
    if etag:
        request_headers["If-None-Match"] = etag
    if last_modified:
        request_headers["If-Modified-Since"] = last_modified

    def failed(error: FetchError) -> Download:
        return Download(
            str(current),
            status=status,
            moved_to=moved_to,
            retry_after_s=retry_after,
            error=str(error),
            error_kind=error.kind,
            elapsed_s=time.monotonic() - started,
        )

    try:
        async with asyncio.timeout(None) as deadline:
            for _ in range(limits.max_redirects + 1):
                if current.scheme not in ("http", "https"):
                    raise FetchError(
                        FetchErrorKind.INVALID_URL,
                        f"refusing to fetch a {current.scheme or 'relative'} URL",
                    )
                sent = dict(request_headers)
                if not _same_origin(current, origin):  # no credentials for another origin
                    sent = {
                        name: value
                        for name, value in sent.items()
                        if name not in (headers or {}) or name.lower() in _SAFE_ANYWHERE
                    }
                async with slots.hold(current):
                    if deadline.when() is None:
                        deadline.reschedule(loop.time() + limits.total_s)
                    async with client.stream(
                        "GET", current, headers=sent, timeout=limits.timeout()
                    ) as response:
                        status = response.status_code
                        retry_after = parse_retry_after(
                            response.headers.get("retry-after"), _server_now(response)
                        )
                        if status in _REDIRECTS:
                            location = response.headers.get("location")
                            if not location:
                                raise FetchError(
                                    FetchErrorKind.REDIRECT,
                                    f"HTTP {status} redirect without a Location",
                                )
                            try:
                                target = current.join(location.strip())
                            except httpx.InvalidURL as exc:
                                raise FetchError(
                                    FetchErrorKind.REDIRECT,
                                    f"HTTP {status} to an invalid URL: {exc}",
                                ) from exc
                            if str(target) in visited:
                                raise FetchError(
                                    FetchErrorKind.REDIRECT,
                                    f"redirect loop: {target} was already visited",
                                )
                            await _refuse_inward(current_start, target, limits, loop)
                            visited.add(str(target))
                            permanent = permanent and status in _PERMANENT
                            if permanent:
                                moved_to = str(target)
                            current = target
                            continue
                        max_age = parse_max_age(response.headers.get("cache-control"))
                        if status == 304:
                            return Download(
                                str(current),
                                status=status,
                                etag=response.headers.get("etag"),
                                last_modified=response.headers.get("last-modified"),
                                moved_to=moved_to,
                                not_modified=True,
                                retry_after_s=retry_after,
                                max_age_s=max_age,
                                elapsed_s=time.monotonic() - started,
                            )
                        if not 200 <= status < 300:
                            raise FetchError(
                                FetchErrorKind.of_status(status), _reason(status, response)
                            )
                        declared = response.headers.get("content-length", "")
                        if declared.strip().isdigit() and int(declared) > limits.max_bytes:
                            raise FetchError(
                                FetchErrorKind.TOO_LARGE,
                                f"Content-Length {int(declared):,} is above the cap of "
                                f"{limits.max_bytes:,} bytes; not read",
                            )
                        body = await _read_body(response, limits.max_bytes)
                        return Download(
                            str(current),
                            status=status,
                            body=body,
                            content_type=response.headers.get("content-type"),
                            etag=response.headers.get("etag"),
                            last_modified=response.headers.get("last-modified"),
                            moved_to=moved_to,
                            retry_after_s=retry_after,
                            max_age_s=max_age,
                            elapsed_s=time.monotonic() - started,
                        )
            raise FetchError(FetchErrorKind.REDIRECT, f"more than {limits.max_redirects} redirects")
    except FetchError as exc:
        return failed(exc)
    except TimeoutError:
        return failed(
            FetchError(
                FetchErrorKind.TIMEOUT,
                f"no complete answer within the {limits.total_s:g} s deadline",
            )
        )
    except (zlib.error, brotli.error) as exc:
        return failed(FetchError(FetchErrorKind.PARSE, f"corrupt compressed body: {exc}"))
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return failed(_fetch_error(exc, limits, status))
