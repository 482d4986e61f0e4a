"""``monitor status``: load the rules, read Redis once, summarize (``monitor/ops/status.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.app.config_files import load_config
from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server
from monitor.core.rules import WatchConfig
from monitor.errors import ConfigError
from monitor.ops.redaction import redact, register
from monitor.ops.status import summarize
from monitor.store.snapshot import read_snapshot
from monitor.store.story_book import iso

__all__ = ["gather_status", "load_rules", "redis_location"]


def load_rules(rules_dir: Path) -> tuple[WatchConfig | None, list[str]]:
    """The watch configuration, or None and its problems (``path:line:col: message``)."""
    try:
        config = load_config(rules_dir, sends=False)
    except ConfigError as exc:
        return None, [redact(str(problem)) for problem in exc.problems]
    register(config.secrets)
    return config, []


def redis_location(settings: Settings) -> str:
    """Where the store is, for people: the URL (password masked) or the embedded database."""
    shown = repr(redis_server(settings))
    return shown.removeprefix("RedisServer(").removesuffix(")")


async def gather_status(settings: Settings, rules_dir: Path, now: float) -> dict[str, Any]:
    """Load the rules, read Redis once, and summarize; ``StoreError`` when Redis is away."""
    config, problems = load_rules(rules_dir)
    sources = [spec.id for spec in config.sources] if config is not None else []
    async with redis_server(settings) as client:
        store = open_store(client, settings)
        snapshot = await read_snapshot(store, sources, now)
        quiet = await store.quiet_list(now)
        feedback = await store.feedback_counts()
    found = summarize(
        snapshot,
        config,
        rules_dir=str(rules_dir),
        problems=problems,
        redis=redis_location(settings),
    )
    found["quiet"] = [
        {"kind": kind, "id": target, "until": iso(until)} for kind, target, until in quiet
    ]
    found["feedback"] = feedback
    return found
