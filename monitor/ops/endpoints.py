"""``/healthz`` and ``/metrics`` over HTTP (aiohttp), for probes and Prometheus; and
``/slack/actions`` for the buttons of Slack alerts, when a Slack channel has a signing secret.

The server knows nothing of the daemon: it is given a coroutine that judges health and one that
refreshes what the metrics read from Redis, each run on every request within a short deadline,
so an answer always comes, and tells the truth, even while Redis is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from monitor.core.health import Health
from monitor.ops.metrics import Metrics

__all__ = ["REQUEST_TIMEOUT_S", "Server"]

logger = logging.getLogger(__name__)

Actions = Callable[[bytes, Mapping[str, str]], Awaitable[tuple[int, str]]]
"""A request's body and headers → the HTTP status and text to answer (``/slack/actions``)."""
MAX_ACTION_BYTES = 64 * 1024  # an interaction payload is a few KB
REQUEST_TIMEOUT_S = 3.0  # an answer within this whatever Redis does (its probes take 2 s at most)


class Server:
    """Serves ``/healthz`` (200 or 503, JSON with ``status`` and ``reasons``) and ``/metrics``.

    ``port`` 0 binds a free port; ``port`` tells which after ``start``.
    """

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], Awaitable[Health]],
        refresh: Callable[[], Awaitable[None]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        actions: Actions | None = None,
    ) -> None:
        """``actions`` answers ``POST /slack/actions`` (Slack's button presses) when given."""
        self.metrics = metrics
        self.actions = actions
        self.health = health
        self.refresh = refresh
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._exposition = make_aiohttp_handler(metrics.registry)

    @property
    def port(self) -> int:
        """The bound port (the asked one until ``start``)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self.actions is not None:
            app.router.add_post("/slack/actions", self._slack_actions)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self._port = int(runner.addresses[0][1])
        logger.info("serving /healthz and /metrics on %s", self.url)

    async def stop(self) -> None:
        """Stop serving. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                health = await self.health()
        except TimeoutError:
            health = Health((f"health check: no verdict within {REQUEST_TIMEOUT_S:g} s",))
        return web.Response(
            status=200 if health.ok else 503,
            text=json.dumps(health.to_dict()),
            content_type="application/json",
        )

    async def _slack_actions(self, request: web.Request) -> web.Response:
        assert self.actions is not None
        body = await request.content.read(MAX_ACTION_BYTES + 1)
        if len(body) > MAX_ACTION_BYTES:
            return web.Response(status=413, text="too large")
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, text = await self.actions(body, request.headers)
        except TimeoutError:
            status, text = 503, f"no answer within {REQUEST_TIMEOUT_S:g} s"
        return web.Response(status=status, text=text)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self.refresh()
        except TimeoutError:
            self.metrics.redis.update(None)
        return await self._exposition(request)
