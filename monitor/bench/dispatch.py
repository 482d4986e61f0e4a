"""``monitor bench dispatch``: latency from outbox entry to the channel's send call.

Alerts are appended to the outbox of an embedded Redis at a steady rate while the real
``Dispatcher`` delivers them through the real ``WebhookChannel`` to a receiver on 127.0.0.1
(answering 204). For each alert the time from its ``XADD`` to the start of ``send`` is recorded;
the report gives percentiles, and how many arrived at the receiver.

With ``--process`` the real process role runs in the same process and event loop meanwhile, as
the daemon runs all roles by default, taking articles (``--items PATH.jsonl`` or generated
ones, as ``bench process``) a batch of 100 at a time as fast as it can against generated rules;
its own alerts go through the same channel. The latency is then what a dispatcher waits while
the process role is saturated. With ``--process-worker`` the process role runs as the daemon
runs it by default beside other roles: in a worker process (``app.process_workers``) on the
same Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from monitor.channels.webhook import WebhookChannel
from monitor.http import FetchLimits, make_client
from monitor.models import Alert, Item
from monitor.ops.progress import SILENT, Progress
from monitor.roles.dispatch import Dispatcher
from monitor.store import Store
from monitor.store.server import RedisServer
from monitor.store.streams import DISPATCH_GROUP


class _Receiver:
    """A minimal HTTP/1.1 endpoint: reads each request whole, answers 204, keeps the connection."""

    def __init__(self) -> None:
        self.received = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.received += 1
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class _Timed(WebhookChannel):
    """The webhook channel, noting when each send call starts."""

    started: dict[str, float]
    expected: int
    all_started: asyncio.Event

    async def send(self, alert: Alert) -> None:
        if alert.rule == "bench":  # not one of the process role's own alerts
            self.started[alert.id] = time.monotonic()
            if len(self.started) >= self.expected:
                self.all_started.set()
        await super().send(alert)


def _alert(n: int) -> Alert:
    item = Item(id=f"bench:{n}", source="bench", title=f"Alert {n}", text="A report.")
    return Alert(
        id=f"b{n:06d}",
        rule="bench",
        rule_name="Bench",
        severity="normal",
        item=item,
        story=f"s{n}",
        matches=(),
        channels=("hook",),
    )


async def _queue(store: Store, items: list[Item]) -> None:
    """``items`` into the items stream, for the process role to take (500 an append)."""
    from monitor.store.streams import item_entry

    for start in range(0, len(items), 500):
        await store.items.add_many([item_entry(i) for i in items[start : start + 500]])


async def _saturate(
    store: Store, items: list[Item], yaml_text: str, stop: asyncio.Event, running: asyncio.Event
) -> int:
    """The process role taking ``items`` a batch at a time until they or the run are done
    (``running`` is set once its first batch is done); how many it processed."""
    from monitor.core.rules import build_config
    from monitor.roles.process import Processor, Runtime
    from monitor.store.stories import StoryKeeper

    runtime = Runtime.build(build_config([("bench.yaml", yaml_text)], {}))
    processor = Processor(store, lambda: runtime, StoryKeeper(store), channels=["hook"])
    await processor.start()
    await _queue(store, items)
    done = 0
    while taken := await processor.step("bench", count=100):
        done += taken
        running.set()
        if stop.is_set():
            break
    running.set()
    return done


async def _saturate_in_worker(
    store: Store,
    address: str,
    items: list[Item],
    yaml_text: str,
    stop: asyncio.Event,
    running: asyncio.Event,
) -> int:
    """``_saturate`` in a process worker, as the daemon runs the process role beside others."""
    import tempfile

    from monitor.app.process_workers import ProcessWorkers, Report, WorkerSpec
    from monitor.app.settings import Settings
    from monitor.core.rules import build_config
    from monitor.ops.logs import in_force

    await _queue(store, items)
    done = 0

    def reported(report: Report) -> None:
        nonlocal done
        if report.counts is not None:
            done += sum(count for _, count in report.counts.items)
            running.set()

    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as data:
        settings = Settings(redis_url=address, key_prefix=store.keys.prefix, data_dir=Path(data))
        config = build_config([("bench.yaml", yaml_text)], {})
        spec = WorkerSpec(settings, config, "bench", in_force(), 8.0, 2.0, 0.0, ("hook",))
        workers = ProcessWorkers(1, spec, reported)
        workers.start()
        await stop.wait()
        await workers.stop()
    running.set()
    return done


async def _run(
    rate: float,
    seconds: float,
    progress: Progress,
    busy: tuple[list[Item], str] | None = None,
    apart: bool = False,
) -> dict[str, Any]:
    total = max(1, int(rate * seconds))
    receiver = _Receiver()
    port = await receiver.start()
    added: dict[str, float] = {}
    server = RedisServer.embedded()
    async with (
        server as client,
        make_client(FetchLimits(), trust_env=False) as http,
    ):
        store = Store(client)
        channel = _Timed("hook", url=f"http://127.0.0.1:{port}/hook", secret="bench", client=http)
        channel.started, channel.expected, channel.all_started = {}, total, asyncio.Event()
        dispatcher = Dispatcher(store, {"hook": channel})
        await dispatcher.start()
        stop = asyncio.Event()

        async def deliver() -> None:
            while not stop.is_set() or await store.outbox.pending_count(DISPATCH_GROUP):
                await dispatcher.step("bench", count=100, block_ms=50)

        worker = asyncio.create_task(deliver())
        running = asyncio.Event()
        processing = None
        if busy:  # the alerts are timed once the process role has a batch behind it
            saturate = (
                _saturate_in_worker(store, server.address, *busy, stop, running)
                if apart
                else _saturate(store, *busy, stop, running)
            )
            processing = asyncio.create_task(saturate)
            await running.wait()
        began = time.monotonic()
        with progress.task("alerts sent into the outbox", total=total) as advance:
            for n in range(total):
                await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
                alert = _alert(n)
                added[alert.id] = time.monotonic()
                await store.outbox.add_many([{"channel": "hook", "alert": alert.to_dict()}])
                advance(1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.all_started.wait(), 30)
        stop.set()
        processed = await processing if processing else 0
        await worker
        elapsed = time.monotonic() - began
    await receiver.close()
    latencies = sorted(
        (channel.started[i] - added[i]) * 1000 for i in added if i in channel.started
    )
    return {
        "alerts": total,
        "rate_per_s": rate,
        "delivered": receiver.received,
        "processed": processed,
        "process_role": ("worker process" if apart else "same process") if busy else None,
        "elapsed_s": round(elapsed, 2),
        "p50_ms": round(_percentile(latencies, 50), 2),
        "p95_ms": round(_percentile(latencies, 95), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "python": platform.python_version(),
    }


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values)) - 1))
    return values[index]


def run_dispatch_bench(
    rate: float = 100.0,
    seconds: float = 10.0,
    progress: Progress = SILENT,
    busy: tuple[list[Item], str] | None = None,
    apart: bool = False,
) -> dict[str, Any]:
    """Send ``rate`` alerts per second for ``seconds`` through the dispatch role; latencies.
    ``busy``: articles and rules (YAML) for the process role to take meanwhile, with the
    interpreter's switch interval the daemon sets when it runs the process role; ``apart``:
    in a worker process instead, as the daemon runs it beside other roles."""
    from monitor.roles.process import SWITCH_INTERVAL_S

    previous = sys.getswitchinterval()
    if busy and not apart:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return asyncio.run(_run(rate, seconds, progress, busy, apart))
    finally:
        sys.setswitchinterval(previous)


def dispatch_report(result: dict[str, Any]) -> str:
    busy = (
        f", while the process role took {result['processed']} items in "
        f"{'a worker' if result.get('process_role') == 'worker process' else 'the same'} process"
        if result.get("processed")
        else ""
    )
    return (
        f"{result['alerts']} alerts at {result['rate_per_s']:.0f}/s through a local webhook: "
        f"outbox entry → send call p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms; "
        f"{result['delivered']} delivered in {result['elapsed_s']} s{busy} "
        f"({result['machine']}, Python {result['python']})"
    )
