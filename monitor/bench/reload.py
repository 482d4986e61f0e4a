"""``monitor bench reload``: what a rule reload costs the process's other roles.

``--rules`` generated rules are written to a rules directory, then read and compiled as the
daemon's reload does (``app.daemon.compiled``), twice: on the event loop itself (the baseline:
what a reload that does not leave the loop would cost) and in a thread, as the daemon does,
while a coroutine wakes every 5 ms and records how late it woke. That lateness is what
``/healthz``, a dispatcher or a poll waits while the rules compile; the report gives its p99
and maximum beside the reload's wall time.
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.app.daemon import compiled
from monitor.bench.match import make_workload
from monitor.bench.process import TICK_S, _percentile, _tick


async def _reload(rules_dir: Path, in_thread: bool) -> dict[str, Any]:
    lags: list[float] = []
    ticking = asyncio.create_task(_tick(lags))
    await asyncio.sleep(TICK_S * 4)  # the ticker runs before the reload starts
    lags.clear()
    started = time.perf_counter()
    if in_thread:
        _, runtime = await asyncio.to_thread(compiled, rules_dir)
    else:
        _, runtime = compiled(rules_dir)
    wall = time.perf_counter() - started
    await asyncio.sleep(TICK_S * 2)
    ticking.cancel()
    return {
        "rules": len(runtime.rules),
        "reload_s": round(wall, 2),
        "loop_lag_p99_ms": round(_percentile(lags, 99), 1),
        "loop_lag_max_ms": round(max(lags, default=0.0), 1),
        "ticks": len(lags),
    }


PER_FILE = 2000  # a rule file is capped at 1 MB (core.config): a big set is many files


def _write_rules(rules_dir: Path, text: str) -> None:
    """The generated rules (an ``entities:`` block and a ``rules:`` block, one entry per line)
    as a rules directory of files of ``PER_FILE`` entries each."""
    head, _, body = text.partition("\nrules:\n")
    blocks = {"entities": head.partition("entities:\n")[2], "rules": body}
    for name, block in blocks.items():
        lines = block.splitlines()
        for number, start in enumerate(range(0, len(lines), PER_FILE)):
            chunk = "\n".join(lines[start : start + PER_FILE])
            path = rules_dir / f"{name}-{number:03}.yaml"
            path.write_text(f"{name}:\n{chunk}\n", encoding="utf-8")


def measure(rules: int, seed: int = 1) -> dict[str, Any]:
    """The reload of ``rules`` generated rules, on the loop and in a thread."""
    with tempfile.TemporaryDirectory(prefix="monitor-bench-reload-") as directory:
        rules_dir = Path(directory)
        _write_rules(rules_dir, make_workload(rules, 0, seed).yaml)
        on_loop = asyncio.run(_reload(rules_dir, in_thread=False))
        in_thread = asyncio.run(_reload(rules_dir, in_thread=True))
    return {
        "rules": rules,
        "in_thread": in_thread,
        "on_the_loop": on_loop,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
    }


def report(result: dict[str, Any]) -> str:
    lines = [f"rule reload of {result['rules']} rules ({result['machine']})"]
    for name, label in (("in_thread", "in a thread (the daemon)"), ("on_the_loop", "on the loop")):
        run = result[name]
        lines.append(
            f"  {label:<26} {run['reload_s']:>7} s; event loop lag p99 {run['loop_lag_p99_ms']}"
            f" ms, max {run['loop_lag_max_ms']} ms ({run['ticks']} wake-ups)"
        )
    return "\n".join(lines)
