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
from collections import Counter, deque
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
        self._plans: deque[Reply] = deque()
        self._messages = 0
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

    def payloads(self, path: str | None = None) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if path is None or r.path == path]

    async def start(self) -> FakeSlack:
        app = web.Application(middlewares=[self._catch])
        app.router.add_post("/api/chat.postMessage", self._post_message)
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
        return received, plan

    async def _post_message(self, request: web.Request) -> web.Response:
        received, plan = await self._record(request)
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
        ts = f"{1_700_000_000 + self._messages}.{self._messages:06d}"
        self._count(payload)
        return web.json_response({"ok": True, "channel": payload["channel"], "ts": ts})

    async def _webhook(self, request: web.Request) -> web.Response:
        received, plan = await self._record(request)
        if plan is not None:
            text = plan.text if plan.text is not None else "error"
            return web.Response(status=plan.status, text=text, headers=plan.headers)
        payload = received.payload
        if not payload.get("text") and not payload.get("blocks"):
            return web.Response(status=400, text="no_text")
        if block_problem(payload):
            return web.Response(status=400, text="invalid_blocks")
        self._count(payload)
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
