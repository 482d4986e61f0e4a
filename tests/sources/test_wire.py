"""Wire sources: IPTC ninjs 1.x–3.x and a JMESPath mapping as golden pairs, then over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from monitor.errors import ConfigError, SourceError
from monitor.sources.wire import WireMapping, WireSource, parse_time, parse_wire
from tests.sources import http_server as hs
from tests.sources.http_server import Request, Server

WIRE = Path(__file__).resolve().parent.parent / "data" / "wire"
NOW = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
URL = "https://wire.example.org/v1/items"
CASES = ["ninjs-1.x", "ninjs-2.x", "ninjs-3.x", "custom-api"]


def mapping_for(name: str) -> WireMapping | None:
    path = WIRE / f"{name}.mapping.json"
    return WireMapping.compile(json.loads(path.read_text())) if path.exists() else None


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    expected = json.loads((WIRE / f"{name}.expected.json").read_text(encoding="utf-8"))
    parsed = parse_wire(
        (WIRE / f"{name}.json").read_bytes(), "wire", mapping=mapping_for(name), url=URL, now=NOW
    )
    assert [item.to_dict() for item in parsed.items] == expected["items"]
    assert list(parsed.problems) == expected["problems"]
    assert (parsed.newest.isoformat() if parsed.newest else None) == expected["newest"]


def test_ninjs_skips_withheld_and_canceled_items() -> None:
    one = parse_wire((WIRE / "ninjs-1.x.json").read_bytes(), "wire", now=NOW)
    three = parse_wire((WIRE / "ninjs-3.x.json").read_bytes(), "wire", now=NOW)
    titles = [i.title for i in one.items + three.items]
    assert "Withdrawn story" not in titles and "Canceled" not in titles


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([{"uri": "a", "headline": "List"}], ["List"]),
        ({"items": [{"uri": "a", "headline": "Items"}]}, ["Items"]),
        ({"data": [{"uri": "a", "headline": "Data"}]}, ["Data"]),
        ({"data": {"items": [{"uri": "a", "headline": "Nested"}]}}, ["Nested"]),
        ({"uri": "a", "headline": "One object"}, ["One object"]),
        ({"items": [{"item": {"uri": "a", "headline": "Wrapped"}}]}, ["Wrapped"]),
        ([], []),
    ],
)
def test_ninjs_item_containers(document: Any, expected: list[str]) -> None:
    parsed = parse_wire(json.dumps(document).encode(), "wire")
    assert [item.title for item in parsed.items] == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "invalid JSON"),
        (b'{"status": "ok"}', "no list of items"),
        (b"[" * 100_000, "invalid JSON"),
    ],
)
def test_unreadable_responses(data: bytes, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        parse_wire(data, "wire")


def test_mapping_items_must_be_a_list() -> None:
    mapping = WireMapping.compile({"items": "response", "title": "t"})
    with pytest.raises(SourceError, match=r"mapping\.items found dict, not a list"):
        parse_wire(b'{"response": {"t": "x"}}', "wire", mapping=mapping)
    with pytest.raises(SourceError, match=r"mapping\.items found nothing"):
        parse_wire(b"{}", "wire", mapping=mapping)


def test_mapping_without_items_finds_the_list_like_ninjs() -> None:
    mapping = WireMapping.compile({"title": "name", "id": "key"})
    parsed = parse_wire(b'{"data": [{"name": "N", "key": 7}]}', "wire", mapping=mapping)
    assert [(i.title, i.guid) for i in parsed.items] == [("N", "7")]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"items": "a[", "title": "t"}, "mapping.items: invalid JMESPath 'a['"),
        ({"title": "t", "headline": "h"}, "mapping: unknown key 'headline'"),
        ({"items": "results"}, "mapping: 'title' is required"),
        ({"title": "t", "since_param": " "}, "mapping.since_param: an empty query parameter"),
    ],
)
def test_mapping_errors(mapping: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        WireMapping.compile(mapping)


def test_ninjs_takes_only_the_since_param() -> None:
    assert WireMapping.options_only({"since_param": "since"}).since_param == "since"
    with pytest.raises(ConfigError, match="title apply only to format: mapping"):
        WireMapping.options_only({"title": "headline"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-07T10:00:00Z", datetime(2026, 1, 7, 10, tzinfo=UTC)),
        ("2026-01-07T12:00:00+02:00", datetime(2026, 1, 7, 10, tzinfo=UTC)),
        ("2026-01-07T10:00:00", datetime(2026, 1, 7, 10, tzinfo=UTC)),
        ("Wed, 07 Jan 2026 10:00:00 GMT", datetime(2026, 1, 7, 10, tzinfo=UTC)),
        (1767780000, datetime(2026, 1, 7, 10, tzinfo=UTC)),
        (1767780000000, datetime(2026, 1, 7, 10, tzinfo=UTC)),
        ("1767780000", datetime(2026, 1, 7, 10, tzinfo=UTC)),
        (1767780000.5, datetime(2026, 1, 7, 10, 0, 0, 500000, tzinfo=UTC)),
        ("yesterday", None),
        (True, None),
        (None, None),
        ({"date": 1}, None),
    ],
)
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected


# --- over HTTP --------------------------------------------------------------------------------


async def test_ninjs_source_sends_auth_and_the_since_cursor(
    server: Server, client: httpx.AsyncClient
) -> None:
    body = (WIRE / "ninjs-2.x.json").read_bytes()

    async def endpoint(request: Request, writer: Any) -> None:
        await hs.send(writer, 200, body, [("Content-Type", "application/json")])

    server.routes["/v1/items"] = endpoint
    wire = WireSource(
        "agency",
        server.url("/v1/items"),
        client,
        mapping={"since_param": "updated_after"},
        headers={"Authorization": "Bearer t0ken"},
        clock=NOW.timestamp,
    )
    first = await wire.fetch({})
    assert first.ok and [i.title for i in first.items] == [
        "Gespräche in Genf fortgesetzt",
        "Wrapped item",
    ]
    assert first.state["since"] == "2026-01-07T07:00:00Z"
    assert server.requests[0].headers["authorization"] == "Bearer t0ken"
    assert server.requests[0].headers["accept"].startswith("application/json")
    assert "?" not in server.requests[0].target

    second = await wire.fetch(first.state)
    query = parse_qs(urlsplit(server.requests[1].target).query)
    assert query == {"updated_after": ["2026-01-07T07:00:00Z"]}
    assert second.state["since"] == "2026-01-07T07:00:00Z"  # never moves backwards


async def test_mapping_source_with_etag(server: Server, client: httpx.AsyncClient) -> None:
    server.routes["/api"] = hs.conditional(
        (WIRE / "custom-api.json").read_bytes(), '"w1"', "Wed, 07 Jan 2026 11:00:00 GMT"
    )
    mapping = json.loads((WIRE / "custom-api.mapping.json").read_text())
    wire = WireSource(
        "custom", server.url("/api"), client, format="mapping", mapping=mapping, clock=NOW.timestamp
    )
    first = await wire.fetch({})
    assert first.ok and [i.guid for i in first.items] == ["9001", "9002"]
    assert first.items[0].url == server.url("/stories/9001")
    assert first.problems == ("item 2: mapping found neither a title nor a body",)
    assert first.state["etag"] == '"w1"'
    assert first.state["since"] == "2026-01-07T11:00:00Z"
    second = await wire.fetch(first.state)
    assert second.not_modified and second.items == ()
    assert second.state["since"] == first.state["since"]
    assert parse_qs(urlsplit(server.requests[1].target).query) == {
        "updated_after": ["2026-01-07T11:00:00Z"]
    }


async def test_an_empty_wire_is_not_an_error(server: Server, client: httpx.AsyncClient) -> None:
    server.static("/v1/items", b'{"items": []}')
    result = await WireSource("quiet", server.url("/v1/items"), client).fetch({"since": "x"})
    assert result.ok and result.items == ()
    assert result.state["since"] == "x"


async def test_wire_errors_are_values(server: Server, client: httpx.AsyncClient) -> None:
    server.static("/broken", b"<html>oops</html>")
    server.routes["/down"] = hs.status(503, ("Retry-After", "60"))
    broken = await WireSource("w", server.url("/broken"), client).fetch({"etag": '"a"'})
    down = await WireSource("w", server.url("/down"), client).fetch({})
    assert broken.error is not None and broken.error.startswith("invalid JSON")
    assert broken.state == {"etag": '"a"'}
    assert (down.error, down.retry_after_s) == ("HTTP 503 Service Unavailable", 60.0)


async def test_a_moved_wire_does_not_store_the_cursor_in_its_url(
    server: Server, client: httpx.AsyncClient
) -> None:
    async def moved(request: Request, writer: Any) -> None:
        query = request.target.partition("?")[2]
        await hs.send(writer, 308, b"", [("Location", f"/v2/items?{query}")])

    server.routes["/v1/items"] = moved
    server.static(
        "/v2/items", b'[{"uri": "u1", "headline": "H", "versioncreated": "2026-01-08T00:00:00Z"}]'
    )
    wire = WireSource(
        "w", server.url("/v1/items"), client, mapping={"since_param": "since"}, clock=NOW.timestamp
    )
    result = await wire.fetch({"since": "2026-01-01T00:00:00Z"})
    assert result.ok
    assert server.requests[1].target == "/v2/items?since=2026-01-01T00%3A00%3A00Z"
    assert result.state["url"] == server.url("/v2/items")
    assert result.state["since"] == "2026-01-08T00:00:00Z"


def test_bad_mapping_fails_at_construction(client: httpx.AsyncClient) -> None:
    with pytest.raises(ConfigError, match="invalid JMESPath"):
        WireSource("w", "https://x.invalid/", client, format="mapping", mapping={"title": "["})
