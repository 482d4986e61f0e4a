"""A webhook receiver on 127.0.0.1 for tests: accepts every alert POSTed to ``/hook`` and
counts it by delivery id, as docs/webhook.md tells receivers to (the body's ``id``, repeated in
``Idempotency-Key``), so a test can check that each alert arrived exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

PATH = "/hook"
SCHEMA = "newsmonitor.alert/1"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one accepted request carried."""

    id: str
    alert: str
    item: str
    followup: bool


class WebhookReceiver:
    """Plays a webhook endpoint on a free loopback port; use as ``async with``."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.problems: list[str] = []  # requests that were not what docs/webhook.md promises
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def counts(self) -> Counter[str]:
        """How many times each delivery id arrived."""
        return Counter(delivery.id for delivery in self.deliveries)

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post(PATH, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            delivery = Delivery(
                body["id"], body["alert"]["id"], body["item"]["id"], body["alert"]["followup"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            self.problems.append(f"unreadable alert: {exc!r}")
            return web.Response(status=400)
        if body.get("schema") != SCHEMA:
            self.problems.append(f"{delivery.id}: schema {body.get('schema')!r}")
        if request.headers.get("Idempotency-Key") != delivery.id:
            self.problems.append(f"{delivery.id}: Idempotency-Key differs from the body's id")
        self.deliveries.append(delivery)
        return web.Response(status=204)
