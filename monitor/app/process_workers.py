"""The process role in worker processes of the daemon's own (``MONITOR_PROCESS_WORKERS``).

In one interpreter, the process role's CPU work (tokenizing, weighing, deciding placement)
shares the interpreter with the dispatcher: an alert waits behind a batch, however the work is
cut into threads. A daemon that runs the process role beside another role therefore runs it in
a worker process of its own by default (a fresh interpreter, ``spawn``), on the same Redis (the
embedded one through its socket): the dispatcher's interpreter only sends.

A worker is one more consumer of the items stream (``<daemon's consumer>-process-<n>``, with
its own heartbeat, so a dead worker's entries are taken over as any consumer's). It reports to
its daemon over a pipe: each step that worked (``/healthz``'s beat of the process role), why a
step failed, and each batch's counts for ``/metrics``. The daemon sends it each configuration
it reloads (compiled again in the worker, off its event loop) and, to stop, ``stop``: the
worker finishes the queue as the daemon would (``DRAIN_S``) and exits. A worker that dies is
started again with backoff; one whose daemon died (its pipe closed) stops by itself. A worker
ignores SIGINT and SIGTERM (a terminal's Ctrl-C and systemd's stop reach the whole group): the
daemon stops it, after its pollers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from monitor.app.settings import Settings
from monitor.app.stepping import drain, keep_stepping
from monitor.app.wiring import open_store, story_keeper
from monitor.core.rules import WatchConfig
from monitor.ops.logs import LogFormat, configure, context
from monitor.ops.metrics import BatchCounts, Metrics
from monitor.ops.redaction import register
from monitor.roles.process import Processor, Runtime
from monitor.store.server import RedisServer

__all__ = ["ProcessWorkers", "Report", "WorkerSpec", "worker_count"]

logger = logging.getLogger(__name__)

RESTART_S = (1.0, 30.0)  # a dead worker is started again after 1 s, doubling up to 30 s
STOP_GRACE_S = 10.0  # beyond its drain, how long a stopping worker is waited for


def worker_count(settings: Settings, roles: frozenset[str], once: bool) -> int:
    """How many process workers a daemon runs: none with ``--once`` or without the process
    role; ``MONITOR_PROCESS_WORKERS`` when set; else one when the daemon runs another role too
    (alone, the process role is this process's only work)."""
    if once or "process" not in roles:
        return 0
    if settings.process_workers is not None:
        return settings.process_workers
    return 1 if roles - {"process"} else 0


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, sent to it when it is spawned."""

    settings: Settings  # its Redis URL reaches the daemon's Redis
    config: WatchConfig
    consumer: str
    log: tuple[str, LogFormat]
    alive_s: float
    heartbeat_s: float
    drain_s: float
    channels: tuple[str, ...] | None = None  # every alert to these (``monitor bench``)


@dataclass(frozen=True)
class Report:
    """One message of a worker to its daemon."""

    worker: int
    kind: str  # "ready", "beat", "failing", "counts"
    reason: str = ""
    counts: BatchCounts | None = None
    match_seconds: tuple[float, ...] = ()


class _Durations:
    """Where a worker's processor times its matches until they are sent with the batch."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, seconds: float) -> None:
        self.values.append(seconds)


class _RelayedMetrics(Metrics):
    """A worker's metrics: each batch's counts and match times go to the daemon."""

    def __init__(self, send: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__()
        self._send = send
        self.durations = _Durations()
        self.match_seconds = self.durations  # type: ignore[assignment]

    def count_processed(self, batch: BatchCounts) -> None:
        timed, self.durations.values = tuple(self.durations.values), []
        self._send("counts", {"counts": batch, "match_seconds": timed})


def run_worker(index: int, spec: WorkerSpec, inbox: Connection, outbox: Connection) -> None:
    """A worker process's body (``spawn`` calls it): the process role until told to stop."""
    # Ctrl-C (the terminal's process group) and SIGTERM (systemd's whole control group) are the
    # daemon's: it says when to stop, after its pollers, so the queue is drained in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure(*spec.log)
    register(spec.config.secrets)
    asyncio.run(_work(index, spec, inbox, outbox))


async def _work(index: int, spec: WorkerSpec, inbox: Connection, outbox: Connection) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    runtime = Runtime.build(spec.config)
    _ = runtime.matcher  # compiled before the first batch
    sending = threading.Lock()

    def send(kind: str, fields: dict[str, Any] | None = None) -> None:
        with sending, contextlib.suppress(OSError):  # a daemon gone: the inbox says so too
            outbox.send(Report(index, kind, **(fields or {})))

    def swap(new: Runtime) -> None:
        nonlocal runtime
        runtime = new
        logger.info("process worker %d: %d rules in force", index, len(new.config.rules))

    def listen() -> None:  # a thread: the daemon's messages, each configuration compiled here
        while True:
            try:
                kind, value = inbox.recv()
            except (EOFError, OSError):
                kind, value = "stop", None  # the daemon is gone
            if kind == "config":
                try:
                    register(value.secrets)
                    compiled = Runtime.build(value)
                    _ = compiled.matcher  # here, off the event loop, before it is swapped in
                except Exception as exc:  # the daemon checked it; still, the last one stays
                    logger.exception("process worker %d: new rules not compiled: %s", index, exc)
                    continue
                loop.call_soon_threadsafe(swap, compiled)
            elif kind == "stop":
                loop.call_soon_threadsafe(stopping.set)
                return

    threading.Thread(target=listen, name="daemon-messages", daemon=True).start()
    settings = spec.settings
    async with RedisServer.from_url(settings.redis_url or "") as client:
        store = open_store(client, settings)
        processor = Processor(
            store,
            lambda: runtime,
            story_keeper(store, settings),
            reclaim_idle_ms=int(settings.reclaim_idle_s * 1000),
            channels=spec.channels,
            metrics=_RelayedMetrics(send),
            take_over_dead=True,
        )
        beating = asyncio.create_task(
            store.keep_alive([spec.consumer], spec.alive_s, spec.heartbeat_s)
        )
        await processor.start()
        gc.collect()
        gc.freeze()
        logger.info("process worker %d running as %s (pid %d)", index, spec.consumer, os.getpid())
        send("ready")
        count = settings.batch_size
        await keep_stepping(
            processor.step,
            "process",
            spec.consumer,
            count,
            stopping,
            lambda: send("beat"),
            lambda reason: send("failing", {"reason": reason}),
        )
        try:
            await drain(processor.step, spec.consumer, count, loop.time() + spec.drain_s)
        except Exception as exc:  # what is left stays pending, for the next consumer
            logger.error("process worker %d: drain stopped: %s", index, exc)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
    gc.unfreeze()


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess
    inbox: Connection  # the daemon's end of the worker's inbox
    relay: threading.Thread  # hands the worker's reports to the event loop, until they end


class ProcessWorkers:
    """The daemon's process workers: started, kept running, told of new configurations,
    stopped."""

    def __init__(self, count: int, spec: WorkerSpec, on_report: Callable[[Report], None]) -> None:
        self.count = count
        self.spec = spec
        self.on_report = on_report
        self.workers: dict[int, _Worker] = {}
        self.exits: list[tuple[int, int | None]] = []  # (worker, exit code) of each death
        self.ready: set[int] = set()  # the workers running now that said they run
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._keeping: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._keeping = [
            asyncio.create_task(self._keep(index), name=f"process-worker-{index}")
            for index in range(1, self.count + 1)
        ]

    def stopping(self) -> bool:
        """Whether ``stop`` was called (a method: it changes while ``_keep`` waits)."""
        return self._stopping

    def consumer(self, index: int) -> str:
        return f"{self.spec.consumer}-process-{index}"

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers.values() if w.process.pid is not None]

    async def _keep(self, index: int) -> None:
        """Run worker ``index``; start it again (with backoff) whenever it dies."""
        loop = asyncio.get_running_loop()
        delay = RESTART_S[0]
        while not self.stopping():
            started = loop.time()
            self.ready.discard(index)
            worker = await asyncio.to_thread(self._spawn, index, loop)
            self.workers[index] = worker
            if self.stopping():  # ``stop`` came while it was being started
                _tell(worker, ("stop", None))
            await asyncio.to_thread(worker.process.join)
            code = worker.process.exitcode
            worker.inbox.close()
            if self.stopping():
                return
            self.exits.append((index, code))
            if loop.time() - started > 60:
                delay = RESTART_S[0]
            reason = f"process worker {index} exited (code {code}); starting it in {delay:.0f} s"
            logger.error(reason, extra=context(role="process"))
            self.on_report(Report(index, "failing", reason))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_S[1])

    def _spawn(self, index: int, loop: asyncio.AbstractEventLoop) -> _Worker:
        """Start worker ``index`` (in a thread: spawning pickles the configuration) and the
        thread that hands its reports to the event loop."""
        inbox_read, inbox_write = self._context.Pipe(duplex=False)
        reports_read, reports_write = self._context.Pipe(duplex=False)
        # The latest configuration (``update``), under the worker's own consumer name.
        worker_spec = replace(self.spec, consumer=self.consumer(index))
        process = self._context.Process(
            target=run_worker,
            args=(index, worker_spec, inbox_read, reports_write),
            name=f"newsmonitor-process-{index}",
        )
        process.start()
        inbox_read.close()  # the worker's ends: a dead worker closes them, its reader sees EOF
        reports_write.close()

        def relay() -> None:
            while True:
                try:
                    report = reports_read.recv()
                except (EOFError, OSError):
                    reports_read.close()
                    return
                with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to tell
                    loop.call_soon_threadsafe(self._reported, report)

        relaying = threading.Thread(target=relay, name=f"process-worker-{index}", daemon=True)
        relaying.start()
        return _Worker(process, inbox_write, relaying)

    def _reported(self, report: Report) -> None:
        if report.kind == "ready":
            self.ready.add(report.worker)
        self.on_report(report)

    async def update(self, config: WatchConfig) -> None:
        """A new configuration for every worker (and for those started later)."""
        self.spec = replace(self.spec, config=config)
        for worker in list(self.workers.values()):
            await asyncio.to_thread(_tell, worker, ("config", config))

    async def stop(self) -> None:
        """Tell every worker to stop; each finishes its queue (``drain_s``) and exits, or is
        killed ``STOP_GRACE_S`` later."""
        self._stopping = True
        for worker in list(self.workers.values()):
            await asyncio.to_thread(_tell, worker, ("stop", None))
        limit = self.spec.drain_s + STOP_GRACE_S
        started = time.monotonic()
        for index, worker in list(self.workers.items()):
            left = max(0.1, limit - (time.monotonic() - started))
            await asyncio.to_thread(worker.process.join, left)
            if worker.process.is_alive():
                logger.error("process worker %d did not stop in %.0f s: killed", index, limit)
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, 5.0)
            await asyncio.to_thread(worker.relay.join, 5.0)  # its last reports handed over
        await asyncio.sleep(0)  # and taken in
        for task in self._keeping:
            task.cancel()
        await asyncio.gather(*self._keeping, return_exceptions=True)


def _tell(worker: _Worker, message: tuple[str, Any]) -> None:
    with contextlib.suppress(OSError, ValueError):  # a worker that is gone hears nothing
        worker.inbox.send(message)
