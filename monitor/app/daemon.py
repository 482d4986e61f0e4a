"""The daemon: the chosen roles against one Redis, until SIGINT or SIGTERM.

Beside other roles, the process role runs in worker processes of the daemon's own
(``process_workers``). Stopping stops new polls, lets the queues drain, and returns cleanly.
The rules directory is watched and reloaded without a restart; ``/healthz`` and ``/metrics``
are served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import watchfiles

from monitor.app.config_files import SUFFIXES, load_config, rule_files
from monitor.app.process_workers import ProcessWorkers, Report, WorkerSpec, worker_count
from monitor.app.settings import Settings
from monitor.app.slack_actions import SlackActions, signing_secrets
from monitor.app.stepping import Step, drain, keep_stepping
from monitor.app.wiring import (
    ThreadStore,
    build_channels,
    build_sources,
    consumer_name,
    fetch_limits,
    open_store,
    redis_server,
    story_keeper,
)
from monitor.channels.base import Channel
from monitor.core.health import Health, assess
from monitor.core.rules import WatchConfig
from monitor.errors import ConfigError, StoreError
from monitor.http import make_client
from monitor.ops.endpoints import Server
from monitor.ops.logs import in_force
from monitor.ops.metrics import Metrics
from monitor.ops.redaction import redact, register
from monitor.ops.watchdog import Operator
from monitor.roles.dispatch import Dispatcher
from monitor.roles.poll import Poller
from monitor.roles.process import SWITCH_INTERVAL_S, Processor, Runtime
from monitor.store import Store
from monitor.store.snapshot import ping, read_gauges

__all__ = ["DRAIN_S", "ROLES", "App", "rules_snapshot"]

logger = logging.getLogger(__name__)

HEARTBEAT_S = 2.0  # how often a process says it is alive
ALIVE_S = 8.0  # how long a heartbeat lasts: a dead process's work is taken over after this

ROLES = ("poll", "process", "dispatch")
DRAIN_S = 30.0  # at shutdown, queued work is finished for at most this long
RELOAD_DEBOUNCE_MS = 300  # a save is applied well within 2 s


def rules_snapshot(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What the rules directory holds now, cheaply: enough to tell that something changed."""
    found = []
    for path in rule_files(directory) if directory.exists() else []:
        with contextlib.suppress(OSError):
            stat = path.stat()
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


class App:
    """The daemon: the chosen roles against one Redis, until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        config: WatchConfig,
        roles: Collection[str] = ROLES,
        *,
        rules_dir: Path | None = None,
        http_port: int | None = None,
    ) -> None:
        """``rules_dir``: watched for changes, which apply without a restart (None: not watched).
        ``http_port``: of /healthz and /metrics, 0 for any free one (``server.port`` tells which);
        None takes ``settings.http_port``, where 0 turns the endpoint off."""
        self.settings = settings
        self.http_port = (settings.http_port or None) if http_port is None else http_port
        self.server: Server | None = None
        self.metrics = Metrics()
        self.metrics.configured(ok=True, rules=len(config.rules), at=time.time())
        self.beats: dict[str, float] = {}  # role → when its loop last stepped (the loop's clock)
        self.failing: dict[str, str] = {}  # role → why its last step failed
        self.rules_dir = rules_dir
        self.runtime = Runtime.build(config)
        self.roles = frozenset(roles)
        self.here = self.roles  # the roles this process runs itself (not in its workers)
        self.limits = fetch_limits(settings)
        self.http = make_client(self.limits)  # one client, shared by every HTTP source
        self.sources = build_sources(config, self.http, self.limits) if "poll" in self.roles else []
        self.store: Store | None = None
        self.threads = ThreadStore()
        self.channels = self._channels(config)
        self.runtime_channels = list(config.channels)
        self._closing: set[asyncio.Future[None]] = set()
        self.consumer = consumer_name(settings)
        self.stopping = asyncio.Event()
        self.poller: Poller | None = None
        self.operator: Operator | None = None
        self.workers: ProcessWorkers | None = None  # the process role's, when it runs in them
        self._workers_failing: dict[int, str] = {}

    def _channels(self, config: WatchConfig) -> dict[str, Channel]:
        if "dispatch" not in self.roles:
            return {}
        return build_channels(config, client=self.http, threads=self.threads)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig)

    def stop(self, sig: int | None = None) -> None:
        if not self.stopping.is_set():
            logger.info(
                "stopping%s: draining queues", f" on {signal.Signals(sig).name}" if sig else ""
            )
        self.stopping.set()

    async def run(self, *, once: bool = False) -> None:
        server = redis_server(self.settings)
        async with server as client:
            store = self.store = self.threads.store = open_store(client, self.settings)
            operator = self.operator = Operator(
                store,
                lambda: self.runtime.config,
                source_failing_after=self.settings.source_failing_after,
                channel_failing_after=self.settings.channel_failing_after,
            )
            poller = self.poller = Poller(
                store, self.sources, owner=self.consumer, metrics=self.metrics, operator=operator
            )
            idle_ms = int(self.settings.reclaim_idle_s * 1000)
            processor = Processor(
                store,
                lambda: self.runtime,
                story_keeper(store, self.settings),
                reclaim_idle_ms=idle_ms,
                metrics=self.metrics,
                take_over_dead=True,
            )
            dispatcher = Dispatcher(
                store,
                self.channels,
                reclaim_idle_ms=idle_ms,
                metrics=self.metrics,
                config=lambda: self.runtime.config,
                operator=operator,
                alive_s=ALIVE_S,
            )
            # Alive before the first read: a restart finds its predecessor's work at once.
            beating = asyncio.create_task(
                store.keep_alive([self.consumer, dispatcher.owner], ALIVE_S, HEARTBEAT_S)
            )
            workers = worker_count(self.settings, self.roles, once)
            if workers:
                self.here = self.roles - {"process"}
                self.workers = ProcessWorkers(
                    workers,
                    WorkerSpec(
                        self.settings.model_copy(update={"redis_url": server.address}),
                        self.runtime.config,
                        self.consumer,
                        in_force(),
                        ALIVE_S,
                        HEARTBEAT_S,
                        DRAIN_S,
                    ),
                    self._reported,
                )
                self.workers.start()
            in_process = "process" in self.here
            if in_process:
                await asyncio.to_thread(lambda: self.runtime.matcher)  # compiled before a batch
                await processor.start()
            if "dispatch" in self.roles:
                await dispatcher.start()
            # Everything built so far (the rules' automaton, the configuration) lives as long
            # as the process: out of the collector's sight, a full collection no longer walks
            # it (at 10,000 rules, a pause of the event loop). A reload gives it back.
            gc.collect()
            gc.freeze()
            if in_process:  # its CPU work in threads: the loop gets turns sooner
                sys.setswitchinterval(SWITCH_INTERVAL_S)
            logger.info(
                "running roles=%s sources=%d rules=%d channels=%d process_workers=%d",
                ",".join(sorted(self.roles)),
                len(self.sources),
                len(self.runtime.config.rules),
                len(self.channels),
                workers,
            )
            if once:
                await poller.poll_all()
            else:
                if "poll" in self.roles:
                    poller.start()
                loops = [
                    asyncio.create_task(self._loop(role.step, role_name))
                    for role, role_name in ((processor, "process"), (dispatcher, "dispatch"))
                    if role_name in self.here
                ]
                if self.rules_dir is not None:
                    loops.append(asyncio.create_task(self._watch(poller)))
                async with self._endpoint():
                    await self.stopping.wait()
                await poller.stop()
                await asyncio.gather(*loops)
            # One deadline for the whole drain, workers' included: they finish the queue first
            # (within it), then the alerts go in what is left of it.
            deadline = asyncio.get_running_loop().time() + DRAIN_S
            if self.workers is not None:
                await self.workers.stop()
            await self._drain(processor, dispatcher, deadline)
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            for channel in self.channels.values():
                await channel.close()
            if self._closing:
                await asyncio.gather(*self._closing)
            await self.http.aclose()
            gc.unfreeze()

    def _reported(self, report: Report) -> None:
        """What a process worker says: its steps are the process role's beats, its failures
        the role's reasons not to be healthy, its batches' counts go to ``/metrics``."""
        if report.kind == "beat":
            self.beats["process"] = asyncio.get_running_loop().time()
            self._workers_failing.pop(report.worker, None)
        elif report.kind == "failing":
            self._workers_failing[report.worker] = report.reason
        elif report.kind == "counts" and report.counts is not None:
            self.metrics.count_processed(report.counts)
            for seconds in report.match_seconds:
                self.metrics.match_seconds.observe(seconds)
        if self._workers_failing:
            self.failing["process"] = "; ".join(
                f"worker {index}: {reason}"
                for index, reason in sorted(self._workers_failing.items())
            )
        else:
            self.failing.pop("process", None)

    async def _watch(self, poller: Poller) -> None:
        """Reload the configuration whenever a YAML file under the rules directory changes.

        File events wake the loop at once; it also wakes every second and compares a snapshot
        of the files (path, mtime, size) with the one last loaded, so a change made while a
        reload was running is never lost.
        """
        assert self.rules_dir is not None
        loaded = rules_snapshot(self.rules_dir)
        while not self.stopping.is_set():
            try:
                async for _ in watchfiles.awatch(
                    self.rules_dir,
                    watch_filter=lambda _, path: path.endswith(SUFFIXES),
                    debounce=RELOAD_DEBOUNCE_MS,
                    step=50,
                    stop_event=self.stopping,
                    rust_timeout=1000,
                    yield_on_timeout=True,
                ):
                    current = rules_snapshot(self.rules_dir)
                    if current != loaded:
                        loaded = current
                        await self.reload(poller)
            except Exception as exc:  # the watcher never dies: log, pause, watch again
                logger.exception("watching %s failed: %s", self.rules_dir, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)

    async def reload(self, poller: Poller) -> bool:
        """Apply the rules directory as it is now; on any problem keep the last good config.
        Reading and compiling run in a thread: the roles go on meanwhile."""
        assert self.rules_dir is not None
        rules_dir = self.rules_dir
        try:
            matching = "process" in self.here
            config, runtime = await asyncio.to_thread(compiled, rules_dir, matching=matching)
            register(config.secrets)
            sources = build_sources(config, self.http, self.limits) if "poll" in self.roles else []
            channels = self._channels(config)
        except ConfigError as exc:
            for problem in exc.problems:
                logger.error("reload: %s", problem)
            logger.error("reload failed: the last good configuration stays in force")
            self.metrics.reloaded(ok=False, rules=None, at=time.time())
            await self._tell_operator([str(problem) for problem in exc.problems])
            return False
        except Exception as exc:
            logger.exception(
                "reload failed unexpectedly (%s): the last good configuration stays", exc
            )
            self.metrics.reloaded(ok=False, rules=None, at=time.time())
            await self._tell_operator([f"{type(exc).__name__}: {exc}"])
            return False
        before = {spec.id: spec for spec in self.runtime.config.sources}
        changed = {spec.id for spec in config.sources if before.get(spec.id) not in (None, spec)}
        gc.unfreeze()  # the old rules may now be garbage the collector has to find
        self.runtime = runtime
        self.sources = sources
        poller.update(sources, changed)
        before_specs = {spec.id: spec for spec in self.runtime_channels}
        self.runtime_channels = list(config.channels)
        old = dict(self.channels)
        for spec in config.channels:  # an unchanged channel keeps its client and its state
            if before_specs.get(spec.id) == spec and spec.id in old:
                channels[spec.id] = old[spec.id]
        self.channels.clear()
        self.channels.update(channels)
        for channel_id, channel in old.items():
            if channels.get(channel_id) is not channel:
                self._closing.add(asyncio.ensure_future(channel.close()))
        logger.info(
            "reloaded %s: %d sources, %d rules, %d channels",
            self.rules_dir,
            len(sources),
            len(config.rules),
            len(channels),
        )
        self.metrics.reloaded(ok=True, rules=len(config.rules), at=time.time())
        if self.workers is not None:
            await self.workers.update(config)
        await self._tell_operator([])
        return True

    async def _tell_operator(self, problems: list[str]) -> None:
        """A failed reload raises an operator alert (and a /healthz warning); the next good one
        clears it. Redis trouble here never stops the reload."""
        if self.operator is None or self.rules_dir is None:
            return
        try:
            await self.operator.reloaded(str(self.rules_dir), [redact(p) for p in problems])
        except StoreError as exc:
            logger.error("operator alert for the reload not queued: %s", exc)

    @contextlib.asynccontextmanager
    async def _endpoint(self) -> AsyncIterator[Server | None]:
        """/healthz and /metrics while the daemon runs; a port that cannot be bound is logged
        and the daemon runs on without them."""
        if self.http_port is None:
            yield None
            return

        def secrets() -> list[str]:  # the configuration reloads
            return signing_secrets(self.runtime.config)

        server = Server(
            self.metrics,
            self.health,
            self.refresh_metrics,
            host=self.settings.http_host,
            port=self.http_port,
            actions=SlackActions(lambda: self.store, secrets) if secrets() else None,
        )
        try:
            await server.start()
        except OSError as exc:
            logger.error(
                "cannot serve /healthz and /metrics on %s: %s; running without them",
                server.url,
                exc,
            )
            yield None
            return
        self.server = server
        try:
            yield server
        finally:
            await server.stop()

    async def health(self) -> Health:
        """Redis answers a PING, every role loop woke recently, the poll scheduler runs."""
        loops = [role for role in ("process", "dispatch") if role in self.roles]
        health = assess(
            now=asyncio.get_running_loop().time(),
            redis_error=await ping(self.store),
            beats={role: self.beats.get(role) for role in loops},
            failing=self.failing,
            scheduler_running=(
                self.poller is not None and self.poller.running if "poll" in self.roles else None
            ),
        )
        return replace(health, warnings=await self._problems())

    async def _problems(self) -> tuple[str, ...]:
        """The operator alerts that are out, as ``source wire-x failing since …``."""
        if self.store is None:
            return ()
        try:
            problems = await asyncio.wait_for(self.store.problems(), timeout=1.0)
        except (StoreError, TimeoutError):
            return ()  # Redis trouble is a reason of its own already
        return tuple(
            f"{name.replace(':', ' ', 1)} failing since "
            f"{datetime.fromtimestamp(at, UTC).isoformat(timespec='seconds')}"
            for name, at in problems.items()
        )

    async def refresh_metrics(self) -> None:
        """Read what the metrics take from Redis (queues, dead letters, failing sources)."""
        sources = [spec.id for spec in self.runtime.config.sources if spec.enabled]
        snapshot = await read_gauges(self.store, sources) if self.store is not None else None
        self.metrics.redis.update(snapshot)

    async def _loop(self, step: Step, role: str) -> None:
        """Run one role until stopped (``stepping.keep_stepping``): each step that works is a
        heartbeat, each failure a reason not to be healthy (``health``)."""

        def stepped() -> None:
            self.beats[role] = asyncio.get_running_loop().time()
            self.failing.pop(role, None)

        def failed(reason: str) -> None:
            self.failing[role] = reason

        count = self.settings.batch_size
        await keep_stepping(step, role, self.consumer, count, self.stopping, stepped, failed)

    async def _drain(self, processor: Processor, dispatcher: Dispatcher, deadline: float) -> None:
        """Finish what is queued here: items into alerts (unless workers do it), alerts to their
        channels; until ``deadline`` (``DRAIN_S`` after the stop), since other processes may
        keep adding. What is left stays in Redis."""
        for role, step in (("process", processor.step), ("dispatch", dispatcher.step)):
            if role in self.here:
                await drain(step, self.consumer, self.settings.batch_size, deadline)


def compiled(rules_dir: Path, *, matching: bool = True) -> tuple[WatchConfig, Runtime]:
    """The rules directory read and compiled (run in a thread by ``App.reload``); the rules
    compiled for matching too when this process matches (``matching``)."""
    config = load_config(rules_dir)
    runtime = Runtime.build(config)
    if matching:
        _ = runtime.matcher
    return config, runtime
