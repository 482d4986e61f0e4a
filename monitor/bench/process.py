"""``monitor bench process``: the process role on a private Redis, its costs counted exactly.

Articles (``--items PATH.jsonl``, rows with ``title`` and ``text``, or generated ones of about
600 words) go into the items stream; then the real ``Processor`` takes them a batch at a time
against ``--rules`` generated rules. Counted over the processing only, from the server's own
statistics and the client's: CPU-seconds of this process per item; commands sent per item and
round trips per batch (each pipeline or lone command written to the socket is one), counted
where redis-py writes them; commands Redis executed per item (those inside scripts included);
bytes sent and received per item; Redis memory kept per item afterwards.

The file also runs as a script with another checkout on ``PYTHONPATH`` (``--baseline DIR``): it
only uses what both implementations have, so the earlier code is measured on the same
articles, in the same run, beside the current one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STATS = ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes")


def _counted() -> Any:
    """The wire counter: this checkout's, also when an older checkout's package is measured
    (``--baseline``) and has none."""
    try:
        from monitor.store.wire import Counted
    except ImportError:
        import importlib.util

        path = Path(__file__).resolve().parents[1] / "store" / "wire.py"
        spec = importlib.util.spec_from_file_location("monitor_bench_wire", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.Counted
    return Counted


def _articles(path: str | None, count: int, rules: int, seed: int) -> tuple[list[Any], str]:
    from monitor.bench.match import make_workload
    from monitor.models import Item

    workload = make_workload(rules, 0 if path else count, seed)
    if not path:
        return list(workload.items), workload.yaml
    items: list[Item] = []
    with open(path, encoding="utf-8") as rows:
        for number, line in enumerate(rows):
            if len(items) >= count:
                break
            row = json.loads(line)
            items.append(
                Item(
                    id=f"bench:{number}",
                    source=str(row.get("source") or "bench"),
                    title=str(row.get("title") or ""),
                    text=str(row.get("text") or ""),
                    url=row.get("url"),
                )
            )
    return items, workload.yaml


async def _info(client: Any) -> dict[str, float]:
    stats = await client.info("stats")
    memory = await client.info("memory")
    found = {key: float(stats.get(key, 0)) for key in STATS}
    found["used_memory"] = float(memory["used_memory"])
    return found


async def _measure(
    path: str | None, count: int, rules: int, seed: int, batch: int
) -> dict[str, Any]:
    from monitor.core.rules import build_config
    from monitor.roles.process import Processor, Runtime
    from monitor.store import Store
    from monitor.store.server import RedisServer
    from monitor.store.stories import StoryKeeper
    from monitor.store.streams import item_entry

    items, yaml_text = _articles(path, count, rules, seed)
    config = build_config([("bench.yaml", yaml_text)], {})
    runtime = Runtime.build(config)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as data:
        async with RedisServer.embedded(Path(data)) as client:
            store = Store(client, prefix="bench:")
            processor = Processor(store, lambda: runtime, StoryKeeper(store), channels=["bench"])
            await processor.start()
            await client.ping()
            empty = await _info(client)
            for start in range(0, len(items), 500):
                await store.items.add_many([item_entry(i) for i in items[start : start + 500]])
            before = await _info(client)
            lags: list[float] = []
            ticking = asyncio.create_task(_tick(lags))
            cpu, wall, batches = time.process_time(), time.perf_counter(), 0
            writes = 0
            with _counted()() as wire:
                while True:
                    mark = wire.writes
                    if not await processor.step("bench", count=batch):
                        break
                    batches, writes = batches + 1, writes + wire.writes - mark
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            ticking.cancel()
            after = await _info(client)
    n = len(items)
    # Each INFO read costs the server one command: leave the two after out.
    executed = after["total_commands_processed"] - before["total_commands_processed"] - 2
    words = statistics.median(len((i.title + " " + i.text).split()) for i in items)
    return {
        "items": n,
        "rules": rules,
        "words_median": words,
        "batch": batch,
        "batches": batches,
        "items_per_cpu_s": round(n / cpu, 1),
        "items_per_s": round(n / wall, 1),
        "commands_per_item": round(wire.commands / n, 2),
        "round_trips_per_batch": round(writes / max(batches, 1), 2),
        "executed_per_item": round(executed / n, 2),
        "kb_sent_per_item": round(
            (after["total_net_input_bytes"] - before["total_net_input_bytes"]) / n / 1024, 2
        ),
        "kb_received_per_item": round(
            (after["total_net_output_bytes"] - before["total_net_output_bytes"]) / n / 1024, 2
        ),
        "kb_kept_per_item": round((after["used_memory"] - empty["used_memory"]) / n / 1024, 2),
        "loop_lag_p99_ms": round(_percentile(lags, 99), 1),
        "loop_lag_max_ms": round(max(lags, default=0.0), 1),
    }


TICK_S = 0.005


async def _tick(lags: list[float]) -> None:
    """How late the event loop wakes a 5 ms sleep, again and again: what another role of the
    same process (a dispatcher) waits while the batch's work holds the loop."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append((time.perf_counter() - started - TICK_S) * 1000)


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def measure(
    path: str | None, count: int, rules: int, seed: int, batch: int = 100, repeat: int = 3
) -> dict[str, Any]:
    """The bench ``repeat`` times; medians of the timings (the counts do not vary)."""
    runs = [asyncio.run(_measure(path, count, rules, seed, batch)) for _ in range(repeat)]
    result = dict(runs[0])
    for key in ("items_per_cpu_s", "items_per_s", "loop_lag_p99_ms", "loop_lag_max_ms"):
        result[key] = statistics.median(run[key] for run in runs)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    result["python"] = platform.python_version()
    return result


def baseline(checkout: Path, arguments: Sequence[str]) -> dict[str, Any]:
    """This bench run on the implementation in ``checkout`` (its own ``monitor`` package)."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *arguments],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the baseline in {checkout} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


FIGURES = (
    ("items_per_cpu_s", "items per CPU-second"),
    ("items_per_s", "items per second (wall)"),
    ("commands_per_item", "Redis commands sent per item"),
    ("round_trips_per_batch", "round trips per batch"),
    ("executed_per_item", "commands Redis executed per item"),
    ("kb_sent_per_item", "KB sent per item"),
    ("kb_received_per_item", "KB received per item"),
    ("kb_kept_per_item", "KB of Redis memory kept per item"),
    ("loop_lag_p99_ms", "event loop lag p99, ms"),
    ("loop_lag_max_ms", "event loop lag max, ms"),
)


def report(current: dict[str, Any], before: dict[str, Any] | None) -> str:
    lines = [
        f"{current['items']} articles (median {current['words_median']:.0f} words), "
        f"{current['rules']} rules, batches of {current['batch']} "
        f"({current['machine']}, Python {current['python']}; medians of the timings)"
    ]
    for key, label in FIGURES:
        beside = f"   before: {before.get(key, '-')}" if before else ""
        lines.append(f"  {label:<40} {current[key]:>10}{beside}")
    return "\n".join(lines)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", dest="path")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """The script form: one JSON line (what ``baseline`` reads)."""
    args = _arguments(argv)
    result = measure(args.path, args.count, args.rules, args.seed, args.batch, args.repeat)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: its modules must not shadow others
    main()
