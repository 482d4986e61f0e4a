"""Hot reload: the daemon applies rule-file changes without a restart, keeping the last good
configuration when a change is invalid."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from monitor.app.config_files import load_config
from monitor.app.daemon import App
from monitor.app.settings import Settings

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def sources_yaml(*ids: str) -> str:
    lines = ["sources:"]
    for source in ids:
        lines.append(f"  - {{id: {source}, type: replay, path: '{SEEDS}', every: 1h}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[App, Path]]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sources.yaml").write_text(sources_yaml("seeds", "more"))
    (rules / "rules.yaml").write_text("rules:\n  - {id: first, query: maduro}\n")
    settings = Settings(data_dir=tmp_path / "data", rules_dir=rules, redis_url=None)
    app = App(settings, load_config(rules), rules_dir=rules)
    task = asyncio.create_task(app.run())
    await until(lambda: app.poller is not None and app.poller.scheduled == ["more", "seeds"])
    await asyncio.sleep(0.5)  # the watcher is up
    yield app, rules
    app.stop()
    await asyncio.wait_for(task, 30)


async def until(condition: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def rule_ids(app: App) -> list[str]:
    return sorted(rule.id for rule in app.runtime.config.rules)


async def test_a_new_rule_file_applies_without_a_restart(daemon: tuple[App, Path]) -> None:
    app, rules = daemon
    (rules / "more.yaml").write_text("rules:\n  - {id: second, query: lavrov}\n")
    await until(lambda: rule_ids(app) == ["first", "second"])
    (rules / "more.yaml").unlink()
    await until(lambda: rule_ids(app) == ["first"])


async def test_an_invalid_change_keeps_the_last_good_configuration(
    daemon: tuple[App, Path], caplog: pytest.LogCaptureFixture
) -> None:
    app, rules = daemon
    caplog.set_level(logging.ERROR, logger="monitor.app.daemon")
    (rules / "rules.yaml").write_text("rules:\n  - {id: first, query: 'maduro AND (x'}\n")
    await until(lambda: "the last good configuration stays in force" in caplog.text)
    assert f"{rules / 'rules.yaml'}:2:" in caplog.text  # where the problem is
    assert rule_ids(app) == ["first"]
    assert str(app.runtime.config.rules[0].expr).count("Term") == 1  # still `maduro`


async def test_a_removed_source_stops_being_polled(daemon: tuple[App, Path]) -> None:
    app, rules = daemon
    (rules / "sources.yaml").write_text(sources_yaml("seeds"))
    assert app.poller is not None
    poller = app.poller
    await until(lambda: poller.scheduled == ["seeds"])
    (rules / "sources.yaml").write_text(sources_yaml("seeds", "again"))
    await until(lambda: poller.scheduled == ["again", "seeds"])


HOSTILE = {
    "deep parentheses": "rules:\n  - {id: first, query: '" + "(" * 200 + "a" + ")" * 200 + "'}\n",
    "NOT repeated": "rules:\n  - {id: first, query: '" + "NOT " * 5000 + "a'}\n",
    "recursive alias": "rules: &r\n  - *r\n",
    "alias bomb": "rules:\n  - &a {id: a, query: x}\n"
    + "".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}' if i else '*a'] * 9)}]\n" for i in range(9)),
}


async def test_hostile_rule_files_never_stop_the_watcher(
    daemon: tuple[App, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Each hostile file is refused with a position, the last good rules stay, and a valid edit
    made afterwards still applies."""
    app, rules = daemon
    caplog.set_level(logging.ERROR, logger="monitor.app.daemon")
    for name, text in HOSTILE.items():
        caplog.clear()
        (rules / "rules.yaml").write_text(text)
        await until(lambda: "the last good configuration stays in force" in caplog.text)
        assert f"{rules / 'rules.yaml'}:" in caplog.text, name
        assert rule_ids(app) == ["first"], name
    (rules / "rules.yaml").write_text("rules:\n  - {id: after, query: lavrov}\n")
    await until(lambda: rule_ids(app) == ["after"])


async def test_a_failed_reload_shows_in_healthz_until_a_good_one(daemon: tuple[App, Path]) -> None:
    app, rules = daemon
    (rules / "rules.yaml").write_text("rules:\n  - {id: first, query: 'maduro AND (x'}\n")

    async def warnings() -> tuple[str, ...]:
        return (await app.health()).warnings

    deadline = asyncio.get_running_loop().time() + 15
    while not any(w.startswith(f"config {rules} failing since") for w in await warnings()):
        assert asyncio.get_running_loop().time() < deadline, await warnings()
        await asyncio.sleep(0.05)
    (rules / "rules.yaml").write_text("rules:\n  - {id: fixed, query: maduro}\n")
    await until(lambda: rule_ids(app) == ["fixed"])
    assert not any(w.startswith("config") for w in await warnings())


async def test_the_running_configuration_is_kept_out_of_the_collectors_sight(
    daemon: tuple[App, Path],
) -> None:
    """After start-up what the daemon built is frozen (a full collection does not walk the
    rules); a reload gives it back to the collector, since the old rules are now garbage."""
    app, rules = daemon
    assert gc.get_freeze_count() > 0
    (rules / "more.yaml").write_text("rules:\n  - {id: second, query: lavrov}\n")
    await until(lambda: rule_ids(app) == ["first", "second"])
    assert gc.get_freeze_count() == 0
