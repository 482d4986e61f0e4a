"""The webhook channel against a real HTTP server on 127.0.0.1: body, headers, signature,
idempotency key, and how each kind of answer becomes a DeliveryError (or not)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.channels.webhook import SCHEMA, WebhookChannel, delivery_id, payload
from monitor.errors import ConfigError, DeliveryError
from monitor.models import Alert, Item, Match

DOCS = Path(__file__).parents[2] / "docs" / "webhook.md"
SECRET = "whsec-Zq81-never-shown"
TOKEN = "tok-path-7Hc2Kq9"
QUERY_TOKEN = "tok-query-Vb51Xw"

TITLE = "Port of Hamburg halts container traffic after cyberattack"
TEXT = (
    "Container terminals at the Port of Hamburg stopped loading ships on Tuesday after a "
    "cyberattack disabled the booking systems, the operator HHLA said."
)


def _at(text: str, word: str) -> tuple[int, int]:
    start = text.index(word)
    return start, start + len(word)


ITEM = Item(
    id="dpa-wire:3f1c09e2b7d4c55e",
    source="dpa-wire",
    title=TITLE,
    text=TEXT,
    url="https://example.org/news/hamburg-port-cyberattack",
    published=datetime(2025, 3, 4, 7, 58, tzinfo=UTC),
    authors=("Jana Berg",),
    tags=("Hamburg", "Shipping"),
    language="en",
)
ALERT = Alert(
    id="1cc78076671db7759f95",
    rule="port-disruption",
    rule_name="Port disruptions",
    severity="high",
    item=ITEM,
    story="s7f3a9c2d41b6e08a",
    matches=(
        Match("title", "Hamburg", *_at(TITLE, "Hamburg")),
        Match("title", "cyberattack", *_at(TITLE, "cyberattack")),
        Match("text", "cyberattack", *_at(TEXT, "cyberattack")),
    ),
    channels=("hook",),
    sources=3,
    created=datetime(2025, 3, 4, 8, 0, 12, tzinfo=UTC),
)
FOLLOWUP = replace(
    ALERT,
    item=replace(ITEM, id="reuters:0b9e77a1c3d2f4e6", source="reuters"),
    followup=True,
    sources=4,
)


# --- a local receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, list[tuple[str, str]]] | None  # None: never answer


@dataclass
class Receiver:
    """An HTTP/1.1 server that records each request with its body and answers with ``reply``."""

    reply: Callable[[Received], Reply] = lambda request: (200, [])
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    def url(self, target: str = "/hook") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}{target}"

    def answer(self, status: int, *headers: tuple[str, str]) -> None:
        self.reply = lambda request: (status, list(headers))

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *lines = head.rstrip("\r\n").split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {}
            for header in lines:
                name, _, value = header.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(method, target, headers, body)
            self.received.append(request)
            reply = self.reply(request)
            if reply is None:
                await reader.read()  # until the client gives up
                return
            status, extra = reply
            lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in extra]
            answer = b"" if status == 204 else b'{"ok":true}'
            if status != 204:
                lines.append(f"Content-Length: {len(answer)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as made:
        yield made


def channel(
    client: httpx.AsyncClient, url: str, secret: str | None = SECRET, timeout_s: float = 5.0
) -> WebhookChannel:
    return WebhookChannel("hook", url=url, secret=secret, client=client, timeout_s=timeout_s)


def documented_verify() -> Callable[..., bool]:
    """The ``verify`` function exactly as docs/webhook.md shows it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(next(b for b in blocks if "def verify(" in b), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def refused_url() -> str:
    """A URL on a local port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/{TOKEN}?key={QUERY_TOKEN}"


async def failure(hook: WebhookChannel, alert: Alert = ALERT) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await hook.send(alert)
    return caught.value


# --- body and headers -----------------------------------------------------------------------


async def test_the_body_is_the_documented_schema(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await channel(client, receiver.url("/hook?x=1")).send(ALERT)

    [request] = receiver.received
    assert (request.method, request.target) == ("POST", "/hook?x=1")
    assert request.json() == {
        "schema": "newsmonitor.alert/1",
        "id": hashlib.sha256(f"{ALERT.id}\0{ITEM.id}".encode()).hexdigest()[:24],
        "alert": {
            "id": "1cc78076671db7759f95",
            "rule": "port-disruption",
            "rule_name": "Port disruptions",
            "severity": "high",
            "story": "s7f3a9c2d41b6e08a",
            "followup": False,
            "sources": 3,
            "created": "2025-03-04T08:00:12+00:00",
        },
        "item": {
            "id": "dpa-wire:3f1c09e2b7d4c55e",
            "source": "dpa-wire",
            "title": TITLE,
            "url": "https://example.org/news/hamburg-port-cyberattack",
            "published": "2025-03-04T07:58:00+00:00",
            "authors": ["Jana Berg"],
            "tags": ["Hamburg", "Shipping"],
            "language": "en",
        },
        "matches": [
            {"field": "title", "term": "Hamburg", "start": 8, "end": 15, "text": "Hamburg"},
            {
                "field": "title",
                "term": "cyberattack",
                "start": 46,
                "end": 57,
                "text": "cyberattack",
            },
            {"field": "text", "term": "cyberattack", "start": 84, "end": 95, "text": "cyberattack"},
        ],
        "snippets": [
            {
                "field": "title",
                "text": TITLE,
                "highlights": [[8, 15], [46, 57]],
                "cut_before": False,
                "cut_after": False,
            },
            {
                "field": "text",
                "text": TEXT,
                "highlights": [[84, 95]],
                "cut_before": False,
                "cut_after": False,
            },
        ],
    }


async def test_headers_name_the_event_the_sender_and_the_delivery(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await channel(client, receiver.url()).send(ALERT)

    [request] = receiver.received
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("newsmonitor/")
    assert request.headers["x-newsmonitor-event"] == "alert"
    assert request.headers["idempotency-key"] == request.json()["id"] == delivery_id(ALERT)
    assert "x-newsmonitor-signature" in request.headers


async def test_the_documented_example_has_the_same_shape_and_a_true_id() -> None:
    example = json.loads(re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.DOTALL)[0])
    body = payload(ALERT)

    assert example == body  # the example in the docs is this test's alert, sent
    assert example["schema"] == SCHEMA
    assert set(example) == {"schema", "id", "alert", "item", "matches", "snippets"}


async def test_text_from_feeds_arrives_unchanged(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    title = 'Zürich: "<b>Eilmeldung</b>" & 東京 \u2028 ✓'
    odd = replace(ALERT, item=replace(ITEM, title=title, url=None, published=None), matches=())
    await channel(client, receiver.url()).send(odd)

    body = receiver.received[0].json()
    assert body["item"]["title"] == title
    assert (body["item"]["url"], body["item"]["published"]) == (None, None)
    assert (body["matches"], body["snippets"]) == ([], [])


def test_snippets_of_a_long_text_are_cut_around_the_matches() -> None:
    text = " ".join(["filler"] * 200) + " cyberattack " + " ".join(["tail"] * 200)
    start = text.index("cyberattack")
    long = replace(
        ALERT,
        item=replace(ITEM, text=text),
        matches=(Match("text", "cyberattack", start, start + 11),),
    )

    [snippet] = payload(long)["snippets"]
    (low, high) = snippet["highlights"][0]
    assert snippet["text"][low:high] == "cyberattack"
    assert snippet["cut_before"] and snippet["cut_after"]
    assert len(snippet["text"]) <= 240


# --- signature ------------------------------------------------------------------------------


async def test_the_signature_verifies_with_the_documented_recipe(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    verify = documented_verify()
    before = int(time.time())
    await channel(client, receiver.url()).send(ALERT)

    [request] = receiver.received
    header = request.headers["x-newsmonitor-signature"]
    stamp = int(re.fullmatch(r"t=(\d+),v1=[0-9a-f]{64}", header).group(1))  # type: ignore[union-attr]
    assert before <= stamp <= time.time()
    assert verify(SECRET, header, request.body)
    assert not verify("another-secret", header, request.body)
    assert not verify(SECRET, header, request.body.replace(b'"high"', b'"low"'))
    assert not verify(SECRET, header, request.body, now=stamp + 301)  # older than 5 minutes
    assert verify(SECRET, header, request.body, now=stamp + 299)


async def test_without_a_secret_nothing_is_signed(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await channel(client, receiver.url(), secret=None).send(ALERT)

    assert "x-newsmonitor-signature" not in receiver.received[0].headers


# --- idempotency ----------------------------------------------------------------------------


async def test_the_idempotency_key_is_stable_and_new_for_a_followup(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    hook = channel(client, receiver.url())
    await hook.send(ALERT)
    await hook.send(ALERT)
    await hook.send(FOLLOWUP)

    first, again, followup = receiver.received
    assert first.headers["idempotency-key"] == again.headers["idempotency-key"]
    assert followup.headers["idempotency-key"] != first.headers["idempotency-key"]
    assert followup.json()["id"] == followup.headers["idempotency-key"]
    assert followup.json()["alert"]["id"] == first.json()["alert"]["id"]
    assert followup.json()["alert"]["followup"] is True


# --- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_is_accepted(
    receiver: Receiver, client: httpx.AsyncClient, status: int
) -> None:
    receiver.answer(status)

    await channel(client, receiver.url()).send(ALERT)

    assert len(receiver.received) == 1


async def test_429_is_retried_after_the_requested_delay(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.answer(429, ("Retry-After", "2"))

    error = await failure(channel(client, receiver.url()))

    assert error.retryable
    assert error.retry_after_s == 2
    assert "429" in str(error)


@pytest.mark.parametrize("status", [408, 425, 500, 502, 503, 504])
async def test_temporary_statuses_are_retryable(
    receiver: Receiver, client: httpx.AsyncClient, status: int
) -> None:
    receiver.answer(status)

    error = await failure(channel(client, receiver.url()))

    assert error.retryable
    assert error.retry_after_s is None
    assert f"HTTP {status}" in str(error)
    assert isinstance(error, DeliveryError)


async def test_503_with_retry_after_passes_the_delay_on(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.answer(503, ("Retry-After", "30"))

    error = await failure(channel(client, receiver.url()))

    assert (error.retryable, error.retry_after_s) == (True, 30)


async def test_a_receiver_that_never_answers_times_out_retryably(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.reply = lambda request: None

    started = time.monotonic()
    error = await failure(channel(client, receiver.url(), timeout_s=0.3))

    assert error.retryable
    assert "no answer within 0.3s" in str(error)
    assert isinstance(error.__cause__, TimeoutError | httpx.TimeoutException)
    assert time.monotonic() - started < 3


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    error = await failure(channel(client, refused_url()))

    assert error.retryable
    assert isinstance(error.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_permanent(
    receiver: Receiver, client: httpx.AsyncClient, status: int
) -> None:
    receiver.answer(status)

    error = await failure(channel(client, receiver.url()))

    assert not error.retryable
    assert f"HTTP {status} {HTTPStatus(status).phrase}" in str(error)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed_and_are_permanent(
    receiver: Receiver, client: httpx.AsyncClient, status: int
) -> None:
    receiver.answer(status, ("Location", "https://hooks.example.net/moved"))

    error = await failure(channel(client, receiver.url()))

    assert not error.retryable
    assert f"HTTP {status}" in str(error)
    assert "https://hooks.example.net (another path)" in str(error)
    assert len(receiver.received) == 1


# --- secrets --------------------------------------------------------------------------------


def _reply_for(case: str, location: str) -> Callable[[Received], Reply]:
    replies: dict[str, Reply] = {
        "404": (404, []),
        "500": (500, []),
        "429": (429, [("Retry-After", "2")]),
        "redirect": (302, [("Location", location)]),
        "timeout": None,
    }
    return lambda request: replies[case]


@pytest.mark.parametrize("case", ["404", "500", "429", "redirect", "timeout", "refused"])
async def test_no_error_reveals_the_url_token_or_the_secret(
    receiver: Receiver, client: httpx.AsyncClient, case: str
) -> None:
    target = f"/hook/{TOKEN}?key={QUERY_TOKEN}"
    if case == "refused":
        url = refused_url()
    else:
        url = receiver.url(target).replace("http://", f"http://user:{QUERY_TOKEN}@")
        # the usual redirect: the same path and token on https
        receiver.reply = _reply_for(case, url.replace("http://", "https://"))

    error = await failure(channel(client, url, timeout_s=0.3))

    told = "".join(traceback.format_exception(error)) + repr(error) + str(error.args)
    assert "127.0.0.1" in str(error)
    for secret in (TOKEN, QUERY_TOKEN, SECRET):
        assert secret not in told
    if case == "redirect":
        assert "(the same path)" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "example.org/hook",
        "http:///hook",
        "http://example.org:port/hook",
        "http://[::1/hook",
    ],
)
def test_a_url_that_is_not_http_is_refused_without_repeating_it(
    client: httpx.AsyncClient, url: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        channel(client, url)
    assert "example.org" not in str(caught.value)


def test_an_empty_secret_is_refused(client: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigError, match="secret is empty"):
        channel(client, "https://example.org/hook", secret="")


# --- the channel's facts --------------------------------------------------------------------


async def test_close_leaves_the_shared_client_open(client: httpx.AsyncClient) -> None:
    hook = channel(client, "https://example.org/hook")

    await hook.close()

    assert not client.is_closed
    assert hook.id == "hook"
    assert (WebhookChannel.rate_per_s, WebhookChannel.burst) == (None, 1)
