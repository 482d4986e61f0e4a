"""A local Slack on 127.0.0.1 for tests: ``POST /api/chat.postMessage`` and an incoming
webhook at ``/services/T000/B000/<secret>``.

It answers like Slack (``{"ok": true, "ts": …}``, ``ok: false`` with an error code, a webhook's
``ok`` text) and refuses what Slack would: a wrong bearer token (``invalid_auth``), no channel,
no text, blocks that do not re-parse as valid Block Kit (``invalid_blocks``), text beyond
40,000 characters (``msg_too_long``). ``plan()`` queues other answers for the next requests
(errors, 429 with Retry-After, 500, delays). Every request is recorded with its raw body, and
each accepted message is counted by alert id, read from the first block's ``block_id``
(``alert-<id>``), the convention of ``monitor.channels.slack``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

WEBHOOK_PATH = "/services/T000/B000/webhook-secret-path"


@dataclass(frozen=True, slots=True)
class Reply:
    """A planned answer: an HTTP status, then a JSON object (API) or a text (webhook)."""

    status: int = 200
    json_body: dict[str, Any] | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    accept_then_wait_s: float = 0.0
    """Take the message as Slack would, then wait this long before answering (a sender that
    dies meanwhile never learns that it arrived)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    raw: bytes
    payload: dict[str, Any]


def alert_id_of(payload: dict[str, Any]) -> str | None:
    """The alert id a message carries in its first block's ``block_id``."""
    blocks = payload.get("blocks") or []
    block_id = blocks[0].get("block_id", "") if blocks else ""
    return block_id.removeprefix("alert-") if block_id.startswith("alert-") else None


def block_problem(payload: dict[str, Any]) -> str | None:
    """Why the blocks are not valid Block Kit, or None; the check Slack makes."""
    try:
        for data in payload.get("blocks") or []:
            block = Block.parse(data)
            if block is None:
                return f"unknown block {data!r}"
            block.validate_json()
    except (SlackObjectFormationError, KeyError, TypeError) as exc:
        return str(exc)
    return None


def text_size(payload: dict[str, Any]) -> int:
    """Characters of text in a message: ``text`` and every text object of its blocks."""
    size = len(payload.get("text") or "")
    for block in payload.get("blocks") or []:
        texts = [block.get("text"), *(block.get("elements") or [])]
        size += sum(len(t.get("text", "")) for t in texts if isinstance(t, dict))
    return size


class FakeSlack:
    """Plays Slack's Web API and an incoming webhook on a free loopback port."""

    def __init__(self, token: str = "xoxb-test-token") -> None:
        self.token = token
        self.received: list[Received] = []
        self.delivered: Counter[str] = Counter()
        self.errors: list[BaseException] = []  # the fake's own failures; a test checks none
        self.messages: list[dict[str, Any]] = []  # accepted by chat.postMessage, oldest first
        self.digests: list[dict[str, Any]] = []  # accepted payloads that carry a digest
        self.history_reads = 0
        self._plans: deque[Reply] = deque()
        self._messages = 0
        self._last_ts = 0.0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def plan(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order, then as Slack would again."""
        self._plans.extend(replies)

    def pending_plans(self) -> int:
        """Planned answers not used yet."""
        return len(self._plans)

    def payloads(self, path: str | None = None) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if path is None or r.path == path]

    async def start(self) -> FakeSlack:
        app = web.Application(middlewares=[self._catch])
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_get("/api/conversations.history", self._history)
        app.router.add_get("/api/conversations.replies", self._replies)
        app.router.add_post(WEBHOOK_PATH, self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @web.middleware
    async def _catch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            self.errors.append(exc)
            raise

    async def _record(self, request: web.Request) -> tuple[Received, Reply | None]:
        raw = await request.read()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        received = Received(request.path, dict(request.headers), raw, payload)
        self.received.append(received)
        plan = self._plans.popleft() if self._plans else None
        if plan is not None and plan.delay_s:
            await asyncio.sleep(plan.delay_s)
            if request.transport is None or request.transport.is_closing():
                raise web.HTTPBadRequest(text="the sender went away")  # never accepted
        return received, plan

    async def _post_message(self, request: web.Request) -> web.Response:
        received, plan = await self._record(request)
        wait = plan.accept_then_wait_s if plan is not None else 0.0
        if wait:
            plan = None  # accepted as Slack would, answered after the wait
        if plan is not None and plan.json_body is None and plan.text is not None:
            return web.Response(status=plan.status, text=plan.text, headers=plan.headers)
        if plan is not None:
            body = plan.json_body if plan.json_body is not None else {"ok": False}
            return web.json_response(body, status=plan.status, headers=plan.headers)
        payload = received.payload
        error = self._refusal(request.headers.get("Authorization"), payload)
        if error is not None:
            return web.json_response({"ok": False, "error": error})
        self._messages += 1
        self._last_ts = max(time.time(), self._last_ts + 0.000001)  # epoch seconds, unique
        ts = f"{self._last_ts:.6f}"
        self._count(payload)
        self.messages.append({**payload, "ts": ts})
        if wait:
            await asyncio.sleep(wait)
        return web.json_response({"ok": True, "channel": payload["channel"], "ts": ts})

    async def _history(self, request: web.Request) -> web.Response:
        """``conversations.history``: a channel's top-level messages, newest first."""
        return self._listing(request, lambda m: not m.get("thread_ts"))

    async def _replies(self, request: web.Request) -> web.Response:
        """``conversations.replies``: a thread's parent and replies."""
        thread = request.query.get("ts", "")
        return self._listing(request, lambda m: thread in (m.get("ts"), m.get("thread_ts")))

    def _listing(
        self, request: web.Request, keep: Callable[[dict[str, Any]], bool]
    ) -> web.Response:
        self.history_reads += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        query = request.query
        oldest = float(query.get("oldest") or 0)
        latest = float(query.get("latest") or "inf")
        metadata = query.get("include_all_metadata") in ("1", "true", "True")
        chosen = [
            m
            for m in reversed(self.messages)
            if m.get("channel") == query.get("channel")
            and oldest < float(m["ts"]) <= latest
            and keep(m)
        ]
        start = int(query.get("cursor") or 0)
        limit = int(query.get("limit") or 100)
        page = chosen[start : start + limit]
        shown = [
            {
                "type": "message",
                "ts": m["ts"],
                "text": m.get("text", ""),
                **({"thread_ts": m["thread_ts"]} if m.get("thread_ts") else {}),
                **({"metadata": m["metadata"]} if metadata and m.get("metadata") else {}),
            }
            for m in page
        ]
        more = start + limit < len(chosen)
        return web.json_response(
            {
                "ok": True,
                "messages": shown,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    async def _webhook(self, request: web.Request) -> web.Response:
        received, plan = await self._record(request)
        wait = plan.accept_then_wait_s if plan is not None else 0.0
        if plan is not None and not wait:
            text = plan.text if plan.text is not None else "error"
            return web.Response(status=plan.status, text=text, headers=plan.headers)
        payload = received.payload
        if not payload.get("text") and not payload.get("blocks"):
            return web.Response(status=400, text="no_text")
        if block_problem(payload):
            return web.Response(status=400, text="invalid_blocks")
        self._count(payload)
        if wait:
            await asyncio.sleep(wait)
        return web.Response(text="ok")

    def _refusal(self, auth: str | None, payload: dict[str, Any]) -> str | None:
        """The error code Slack would answer, or None when it accepts the message."""
        if not auth:
            return "not_authed"
        if auth != f"Bearer {self.token}":
            return "invalid_auth"
        if not payload.get("channel"):
            return "channel_not_found"
        if not payload.get("text") and not payload.get("blocks"):
            return "no_text"
        if block_problem(payload):
            return "invalid_blocks"
        if text_size(payload) > 40_000:
            return "msg_too_long"
        return None

    def _count(self, payload: dict[str, Any]) -> None:
        alert = alert_id_of(payload)
        if alert is not None:
            self.delivered[alert] += 1
        blocks = payload.get("blocks") or []
        if blocks and str(blocks[0].get("block_id", "")).startswith("digest-"):
            self.digests.append(payload)
