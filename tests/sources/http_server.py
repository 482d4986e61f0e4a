"""A real HTTP/1.1 server on 127.0.0.1 for the source tests, with hostile behaviours on demand.

Each route is a coroutine that writes the whole response itself, so a route can misbehave in
any way a server on the internet can: drip bytes, never answer, reset the connection, send an
endless or a decompression-bomb body. Every connection is closed after one response. Requests
are recorded (method, target, headers) so tests can check what the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import cache

import brotli  # type: ignore[import-untyped]

MAX_RSS_MB = 300  # the acceptance bound for the whole process, hostile cases included


def max_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    404: "Not Found",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def head(status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    length: bool = True,
) -> None:
    """A complete response; without ``length`` the body runs until the connection closes."""
    extra = list(headers)
    if length:
        extra.append(("Content-Length", str(len(body))))
    writer.write(head(status, extra) + body)
    await writer.drain()


@dataclass
class Server:
    """Routes by path; ``requests`` records every request in arrival order."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Server:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes[path] = handler
            return handler

        return register

    def static(self, path: str, body: bytes, *headers: tuple[str, str], status: int = 200) -> None:
        async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
            await send(writer, status, body, headers)

        self.routes[path] = handler

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            request = await self._read(reader)
            if request is None:
                return
            self.requests.append(request)
            handler = self.routes.get(request.path)
            if handler is None:
                await send(writer, 404, b"no such route")
            else:
                await handler(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: exactly what the hostile routes expect
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):  # retrieves a reset, so asyncio stays quiet
                await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        line, *header_lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers: dict[str, str] = {}
        for header in header_lines:
            if ":" in header:
                name, value = header.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return Request(method, target, headers)


# --- behaviours ---------------------------------------------------------------------------


def redirect(status: int, location: str) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        await send(writer, status, b"", [("Location", location)])

    return handler


def conditional(body: bytes, etag: str, last_modified: str, *headers: tuple[str, str]) -> Handler:
    """A feed that answers 304 when the client sends the validators it was given."""

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        validators = [("ETag", etag), ("Last-Modified", last_modified), *headers]
        if (
            request.headers.get("if-none-match") == etag
            or request.headers.get("if-modified-since") == last_modified
        ):
            await send(writer, 304, b"", validators, length=False)
        else:
            await send(writer, 200, body, [("Content-Type", "application/rss+xml"), *validators])

    return handler


async def never_answer(request: Request, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def reset(request: Request, writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def drip(interval_s: float = 1.0) -> Handler:
    """Headers, then one byte of a feed every ``interval_s``, forever."""

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, [("Content-Type", "application/rss+xml")]))
        await writer.drain()
        while True:
            writer.write(b"<")
            await writer.drain()
            await asyncio.sleep(interval_s)

    return handler


def endless(total: int, *, with_length: bool) -> Handler:
    """``total`` bytes of feed-shaped text, generated as they are sent."""
    chunk = b"<item><title>filler</title></item>\n" * 1800  # about 64 KB

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        headers = [("Content-Type", "application/rss+xml")]
        if with_length:
            headers.append(("Content-Length", str(total)))
        writer.write(head(200, headers) + b'<rss version="2.0"><channel>')
        sent = 0
        while sent < total:
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()

    return handler


@cache
def gzip_bomb(inflated: int = 1 << 30) -> bytes:
    """A gzip body of about 1 MB that inflates to ``inflated`` zero bytes.

    Built from one deflate block of 1 MiB of zeros ended by a full flush, which resets the
    compressor, so the same bytes repeat for every further MiB: no gigabyte is ever compressed.
    """
    mib = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(b"\0" * mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)
    crc = 0
    zeros = b"\0" * mib
    for _ in range(inflated // mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, inflated & 0xFFFFFFFF)
    return header + block * (inflated // mib) + end + trailer


@cache
def brotli_bomb(inflated: int = 1 << 30) -> bytes:
    """A brotli body of a few KB that inflates to ``inflated`` zero bytes."""
    compressor = brotli.Compressor(quality=5)
    zeros = b"\0" * (1 << 20)
    parts = [compressor.process(zeros) for _ in range(inflated >> 20)]
    parts.append(compressor.finish())
    return b"".join(parts)


def compressed(body: bytes, encoding: str, *, with_length: bool = True) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        headers = [("Content-Type", "application/rss+xml"), ("Content-Encoding", encoding)]
        await send(writer, 200, body, headers, length=with_length)

    return handler


def status(code: int, *headers: tuple[str, str]) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        await send(writer, code, f"error {code}".encode(), headers)

    return handler


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)
