"""Synthetic feeds for ``monitor bench``, and the local HTTP server that serves them.

``feed_document`` writes a deterministic RSS 2.0 or Atom document whose entries carry the HTML
real feeds carry: paragraphs, links (some relative), an image, a script, entities. The same
entry keeps the same content in every version of its feed; a new version adds
``NEW_PER_VERSION`` entries on top, the way a news feed moves.

``FeedServer`` serves such feeds over HTTP/1.1 (keep-alive, gzip) on several ports of 127.0.0.1
with ETag and Last-Modified, answering 304 to a conditional GET that names the current version.
The changed feeds get a new version at each cycle; the others never change. It runs in a child
process (``python -m monitor.bench.feeds``, driven through ``FeedServerProcess``), so the
bench measures the daemon's CPU and memory, not the server's. Only this module's light imports
are loaded there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import gzip
import html
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

__all__ = [
    "NEW_PER_VERSION",
    "FeedServer",
    "FeedServerProcess",
    "changed_feeds",
    "feed_document",
    "feed_path",
]

NEW_PER_VERSION = 3  # entries a changed feed gains per cycle
EPOCH = datetime(2024, 5, 1, tzinfo=UTC)  # entry n is dated EPOCH + n * ENTRY_GAP: all past
ENTRY_GAP = timedelta(minutes=17)
HOST = "127.0.0.1"
_SYLLABLES = ("ka", "lo", "mi", "tren", "vos", "dar", "el", "qui", "sta", "ber", "on", "gal")
_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found", 405: "Method Not Allowed"}


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))


def _words(rng: random.Random, count: int) -> str:
    return " ".join(_word(rng) for _ in range(count))


def _sentence(rng: random.Random) -> str:
    return _words(rng, rng.randint(8, 22)).capitalize() + "."


def _paragraph(rng: random.Random, site: str) -> str:
    """A paragraph of a few sentences with a link (relative or absolute) and entities."""
    parts = [_sentence(rng) for _ in range(rng.randint(2, 4))]
    slug = _words(rng, 3).replace(" ", "-")
    href = f"/news/{slug}" if rng.random() < 0.5 else f"{site}news/{slug}"
    parts.insert(1, f'<a href="{href}">{_words(rng, rng.randint(2, 5))}</a>')
    parts.append(f"&#8220;{_words(rng, 4)}&#8221; &amp; {_word(rng)}&nbsp;&mdash; {_word(rng)}.")
    return "<p>" + " ".join(parts) + "</p>"


def _entry_html(rng: random.Random, site: str, number: int) -> str:
    """An article body: paragraphs, an image, a tracking script, a list, a closing line."""
    paragraphs = [_paragraph(rng, site) for _ in range(rng.randint(3, 6))]
    paragraphs.insert(
        1,
        f'<figure><img src="/img/{number}.jpg" alt="{_words(rng, 3)}" width="640" height="360">'
        f"<figcaption>{_sentence(rng)}</figcaption></figure>",
    )
    paragraphs.insert(
        2,
        "<script>window.dataLayer=window.dataLayer||[];"
        f"dataLayer.push({{'event':'article','id':{number}}});</script>",
    )
    items = "".join(f"<li>{_sentence(rng)}</li>" for _ in range(rng.randint(2, 4)))
    paragraphs.append(f"<ul>{items}</ul><p><em>{_sentence(rng)}</em></p>")
    return "\n".join(paragraphs)


@dataclass(frozen=True, slots=True)
class _Entry:
    number: int
    title: str
    link: str
    guid: str
    author: str
    tags: tuple[str, ...]
    summary: str
    content: str
    date: datetime


def _entry(seed: int, feed: int, number: int, site: str) -> _Entry:
    """Entry ``number`` of ``feed``: the same in every version of the feed."""
    rng = random.Random(f"{seed}:{feed}:{number}")
    title = f"{_words(rng, rng.randint(4, 9)).capitalize()} &amp; {_word(rng)}&#8217;s {_word(rng)}"
    slug = f"{number}-{_words(rng, 3).replace(' ', '-')}"
    return _Entry(
        number=number,
        title=title,
        link=f"{site}news/{slug}",
        guid=f"{site}id/{number}",
        author=_words(rng, 2).title(),
        tags=tuple(_word(rng) for _ in range(rng.randint(1, 3))),
        summary=f"<p>{_sentence(rng)} {_sentence(rng)}</p>",
        content=_entry_html(rng, site, number),
        date=EPOCH + number * ENTRY_GAP,
    )


def feed_document(seed: int, feed: int, *, entries: int, version: int = 0) -> bytes:
    """Feed ``feed`` at ``version``: RSS 2.0 for even numbers, Atom for odd ones; newest first."""
    site = f"https://site{feed}.example/"
    first = version * NEW_PER_VERSION
    chosen = [_entry(seed, feed, n, site) for n in range(first + entries - 1, first - 1, -1)]
    if feed % 2 == 0:
        return _rss(feed, site, chosen)
    return _atom(feed, site, chosen)


def _rss(feed: int, site: str, entries: Sequence[_Entry]) -> bytes:
    items = [
        "<item>"
        f"<title>{e.title}</title><link>{e.link}</link>"
        f'<guid isPermaLink="false">{e.guid}</guid>'
        f"<pubDate>{email.utils.format_datetime(e.date)}</pubDate>"
        f"<dc:creator>{e.author}</dc:creator>"
        + "".join(f"<category>{tag}</category>" for tag in e.tags)
        + f"<description>{html.escape(e.summary)}</description>"
        f"<content:encoded><![CDATA[{e.content}]]></content:encoded>"
        "</item>"
        for e in entries
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Site {feed} news</title><link>{site}</link>"
        f"<description>Everything from site {feed}</description><language>en</language>\n"
        + "\n".join(items)
        + "\n</channel></rss>\n"
    ).encode()


def _atom(feed: int, site: str, entries: Sequence[_Entry]) -> bytes:
    updated = entries[0].date if entries else EPOCH
    items = [
        "<entry>"
        f'<title type="html">{html.escape(e.title)}</title>'
        f'<link rel="alternate" type="text/html" href="{e.link}"/>'
        f"<id>{e.guid}</id>"
        f"<published>{e.date.isoformat()}</published><updated>{e.date.isoformat()}</updated>"
        f"<author><name>{e.author}</name></author>"
        + "".join(f'<category term="{tag}"/>' for tag in e.tags)
        + f'<summary type="html">{html.escape(e.summary)}</summary>'
        f'<content type="html">{html.escape(e.content)}</content>'
        "</entry>"
        for e in entries
    ]
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">'
        f'<title>Site {feed} news</title><link rel="alternate" href="{site}"/>'
        f"<id>{site}</id><updated>{updated.isoformat()}</updated>\n"
        + "\n".join(items)
        + "\n</feed>\n"
    ).encode()


def changed_feeds(feeds: int, share: float, seed: int) -> frozenset[int]:
    """Which of ``feeds`` change at each cycle: ``round(feeds * share)`` of them, by seed."""
    count = min(feeds, max(0, round(feeds * share)))
    return frozenset(random.Random(seed).sample(range(feeds), count))


def feed_path(feed: int) -> str:
    """The path feed ``feed`` is served at."""
    return f"/feeds/{feed}.xml"


# --- the server ---------------------------------------------------------------------------


def _head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class FeedServer:
    """``feeds`` feeds on ``ports`` listening sockets of 127.0.0.1 (any port serves any feed;
    ``FeedServerProcess.url`` spreads them); the ``changed`` ones get a new version at each
    ``next_cycle``."""

    feeds: int
    entries: int
    changed: frozenset[int]
    seed: int = 1
    ports: int = 1
    cycle: int = 0
    served: Counter[int] = field(default_factory=Counter)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> list[int]:
        """Listen on ``ports`` free ports of 127.0.0.1; the port numbers."""
        for _ in range(self.ports):
            self._servers.append(await asyncio.start_server(self._connection, HOST, 0))
        return self.port_numbers

    @property
    def port_numbers(self) -> list[int]:
        """The ports listened on."""
        return [int(server.sockets[0].getsockname()[1]) for server in self._servers]

    def next_cycle(self) -> dict[str, object]:
        """Start the next cycle; what was served in the one that ends (status: count)."""
        ended = {"cycle": self.cycle, "served": {str(k): v for k, v in self.served.items()}}
        self.cycle += 1
        self.served = Counter()
        return ended

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def _version(self, feed: int) -> int:
        return self.cycle if feed in self.changed else 0

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:  # keep-alive: one request after another until the client closes
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                writer.write(self._respond(raw))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, raw: bytes) -> bytes:
        line, *header_lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = [*line.split(" ", 2), "", ""][:3]
        headers = {}
        for header in header_lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        feed = self._feed_of(target)
        if method != "GET" or feed is None:
            status = 405 if feed is not None else 404
            self.served[status] += 1
            return _head(status, [("Content-Length", "0")])
        version = self._version(feed)
        etag = f'"{feed}-{version}"'
        modified = EPOCH + timedelta(hours=version)
        validators = [
            ("ETag", etag),
            ("Last-Modified", email.utils.format_datetime(modified, usegmt=True)),
        ]
        if "if-none-match" in headers:
            unchanged = etag in (tag.strip() for tag in headers["if-none-match"].split(","))
        else:
            since = _http_date(headers.get("if-modified-since"))
            unchanged = since is not None and since >= modified
        if unchanged:
            self.served[304] += 1
            return _head(304, validators)
        body = feed_document(self.seed, feed, entries=self.entries, version=version)
        extra = [
            ("Content-Type", "application/rss+xml" if feed % 2 == 0 else "application/atom+xml")
        ]
        if "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=6)
            extra.append(("Content-Encoding", "gzip"))
        self.served[200] += 1
        return _head(200, [*extra, *validators, ("Content-Length", str(len(body)))]) + body

    def _feed_of(self, target: str) -> int | None:
        path = target.split("?", 1)[0]
        if not (path.startswith("/feeds/") and path.endswith(".xml")):
            return None
        number = path[len("/feeds/") : -len(".xml")]
        if not number.isdigit() or int(number) >= self.feeds:
            return None
        return int(number)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- the child process --------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    """Serve until stdin closes; each line on stdin starts the next cycle (answered on stdout)."""
    server = FeedServer(
        feeds=args.feeds,
        entries=args.entries,
        changed=changed_feeds(args.feeds, args.changed_share, args.seed),
        seed=args.seed,
        ports=args.ports,
    )
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        ports = await server.start()
        _say({"ports": ports, "changed": sorted(server.changed)})
        while await stdin.readline():
            _say(server.next_cycle())
    finally:
        await server.close()


def _say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m monitor.bench.feeds``: the feed server of ``monitor bench poll``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--feeds", type=int, required=True)
    parser.add_argument("--entries", type=int, default=25)
    parser.add_argument("--ports", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changed-share", type=float, default=0.05)
    asyncio.run(_serve(parser.parse_args(argv)))


class FeedServerProcess:
    """A ``FeedServer`` in a child process: ``async with FeedServerProcess(...) as server``.

    The child exits when its stdin closes, so it never outlives the bench, even a killed one.
    """

    def __init__(
        self, feeds: int, *, entries: int, ports: int, seed: int, changed_share: float
    ) -> None:
        self.args = [
            f"--feeds={feeds}",
            f"--entries={entries}",
            f"--ports={ports}",
            f"--seed={seed}",
            f"--changed-share={changed_share}",
        ]
        self.ports: list[int] = []
        self.changed: frozenset[int] = frozenset()
        self._process: asyncio.subprocess.Process | None = None

    def url(self, feed: int) -> str:
        """The URL of feed ``feed`` (feeds are spread over the ports round-robin)."""
        return f"http://{HOST}:{self.ports[feed % len(self.ports)]}{feed_path(feed)}"

    async def __aenter__(self) -> FeedServerProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.bench.feeds",
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            ready = await self._read()
        except BaseException:
            await self.close()
            raise
        self.ports = [int(port) for port in ready["ports"]]
        self.changed = frozenset(int(feed) for feed in ready["changed"])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def next_cycle(self) -> dict[str, Any]:
        """Start the next cycle; what the server answered during the one that ended."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(b"next\n")
        await self._process.stdin.drain()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(30):
            line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError("the bench feed server exited early (see its error above)")
        message: dict[str, Any] = json.loads(line)
        return message

    async def close(self) -> None:
        """Close the child's stdin and wait for it to exit (killed after 10 s). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


if __name__ == "__main__":
    main()
