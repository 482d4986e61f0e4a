"""The process role in worker processes of the daemon (``MONITOR_PROCESS_WORKERS``): a real
spawned interpreter on the daemon's embedded Redis, reporting its beats and counts back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from monitor.app.config_files import load_config
from monitor.app.daemon import App
from monitor.app.process_workers import worker_count
from monitor.app.settings import Settings
from monitor.store.streams import PROCESS_GROUP, item_entry
from tests.factories import make_item


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def alerts_raised(app: App, rule: str) -> float:
    found = app.metrics.registry.get_sample_value(
        "newsmonitor_alerts_raised_total", {"rule": rule, "kind": "first"}
    )
    return found or 0.0


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[App, Path]]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: first, query: maduro}\n")
    settings = Settings(data_dir=tmp_path / "data", rules_dir=rules, redis_url=None, http_port=0)
    app = App(settings, load_config(rules), rules_dir=rules)
    task = asyncio.create_task(app.run())
    await until(lambda: app.workers is not None and bool(app.workers.pids()))
    yield app, rules
    app.stop()
    await asyncio.wait_for(task, 60)


async def add(app: App, number: int, title: str) -> None:
    assert app.store is not None
    item = make_item(
        f"wire:{number}", source="wire", title=title, text=f"{title}. Report {number}."
    )
    await app.store.items.add_many([item_entry(item)])


async def test_the_process_role_runs_in_a_worker_that_reports_to_the_daemon(
    daemon: tuple[App, Path],
) -> None:
    app, rules = daemon
    assert app.workers is not None and app.store is not None
    [pid] = app.workers.pids()
    assert pid != os.getpid()
    await add(app, 1, "Maduro freed")
    await until(lambda: alerts_raised(app, "first") == 1)  # counted by the daemon's /metrics
    assert "process" in app.beats and "process" not in app.failing
    consumers = await app.store.client.xinfo_consumers(app.store.items.key, PROCESS_GROUP)
    assert {c["name"] for c in consumers} == {app.workers.consumer(1)}  # not the daemon's own
    # A reload reaches the worker: it compiles the new rules and matches with them.
    (rules / "more.yaml").write_text("rules:\n  - {id: second, query: lavrov}\n")
    number = 2
    while alerts_raised(app, "second") == 0:  # items the worker took before its swap miss it
        assert number < 200, "the worker never matched with the reloaded rules"
        await add(app, number, "Lavrov calls Caracas")
        number += 1
        await asyncio.sleep(0.2)
    # The daemon never compiled the rules for matching: its worker matches.
    assert "matcher" not in vars(app.runtime)


async def test_without_workers_the_daemon_compiles_its_rules_before_a_batch(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: first, query: maduro}\n")
    settings = Settings(data_dir=tmp_path / "data", redis_url=None, http_port=0, process_workers=0)
    app = App(settings, load_config(rules))
    assert "matcher" not in vars(app.runtime)
    task = asyncio.create_task(app.run())
    await until(lambda: "process" in app.beats)
    assert app.workers is None and "matcher" in vars(app.runtime)
    await add(app, 1, "Maduro freed")
    await until(lambda: alerts_raised(app, "first") == 1)
    app.stop()
    await asyncio.wait_for(task, 60)


async def test_a_worker_that_dies_is_started_again_and_the_daemon_says_so(
    daemon: tuple[App, Path],
) -> None:
    app, _ = daemon
    assert app.workers is not None
    [first] = app.workers.pids()
    os.kill(first, signal.SIGKILL)
    await until(lambda: bool(app.workers and app.workers.exits))
    assert app.workers.exits == [(1, -signal.SIGKILL)]
    assert "worker 1: process worker 1 exited" in app.failing["process"]  # /healthz: 503
    await until(lambda: bool(app.workers and app.workers.pids() != [first]))
    await add(app, 1, "Maduro freed")
    await until(lambda: alerts_raised(app, "first") == 1)
    await until(lambda: "process" not in app.failing)  # the new worker's beats clear it


async def test_workers_stop_with_the_daemon(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: first, query: maduro}\n")
    settings = Settings(data_dir=tmp_path / "data", redis_url=None, http_port=0, process_workers=2)
    app = App(settings, load_config(rules))
    task = asyncio.create_task(app.run())
    await until(lambda: app.workers is not None and app.workers.ready == {1, 2})
    assert app.workers is not None
    processes = [worker.process for worker in app.workers.workers.values()]
    # systemd's stop signals the whole group: a worker leaves stopping to its daemon, which
    # stops it after its pollers (the queue is drained in order).
    os.kill(processes[0].pid, signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert processes[0].is_alive() and not app.workers.exits
    await add(app, 1, "Maduro freed")
    app.stop()
    await asyncio.wait_for(task, 60)
    assert [p.exitcode for p in processes] == [0, 0]  # each drained and exited by itself
    assert alerts_raised(app, "first") == 1  # the item added just before the stop was finished


async def test_a_worker_whose_daemon_is_gone_stops_by_itself(daemon: tuple[App, Path]) -> None:
    app, _ = daemon
    assert app.workers is not None
    worker = app.workers.workers[1]
    worker.inbox.close()  # what the daemon's death does to the worker's end of the pipe
    await asyncio.to_thread(worker.process.join, 60)
    assert worker.process.exitcode == 0


@pytest.mark.parametrize(
    ("setting", "roles", "once", "expected"),
    [
        (None, {"poll", "process", "dispatch"}, False, 1),  # all roles: the process role apart
        (None, {"process"}, False, 0),  # alone, it is this process's work
        (None, {"poll", "dispatch"}, False, 0),
        (3, {"process"}, False, 3),
        (0, {"poll", "process", "dispatch"}, False, 0),
        (2, {"poll", "process", "dispatch"}, True, 0),  # --once runs everything here
    ],
)
def test_how_many_workers(
    setting: int | None, roles: set[str], once: bool, expected: int, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, process_workers=setting)
    assert worker_count(settings, frozenset(roles), once) == expected
