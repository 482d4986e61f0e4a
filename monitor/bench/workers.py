"""``monitor bench workers``: process workers side by side on one Redis, against one alone.

The same articles (``--items PATH.jsonl`` or generated ones, as ``bench process``) go into the
items stream of a private embedded Redis; then one worker process, and in a fresh Redis
``--workers`` of them, each a real ``Processor`` in its own Python process (consumer group
``process``), take them a batch at a time until none is left. They start together, on a signal
in Redis (one token each in a list). Reported for each run: items per second of wall time from
the start to the last worker done, CPU-seconds per item of the workers together, and how often
story placement had to write a batch again because another worker wrote, meanwhile, a key its
items read (``StoryKeeper.retries``; no lock is held while a batch is decided).

On a machine with as many cores as workers, wall throughput is what the workers give; with
Redis and the workers sharing fewer cores, the CPU per item says whether working together
wastes any (reading again, waiting), whatever the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

START_KEY = "bench:go"
SCRIPT = Path(__file__).resolve()  # run again as each worker


async def _fill(client: Any, path: str | None, count: int, rules: int, seed: int) -> None:
    from monitor.bench.process import _articles
    from monitor.store import Store
    from monitor.store.streams import item_entry

    # The bench's Redis is thrown away: no snapshots (a failed one would refuse writes).
    await client.config_set("save", "")
    await client.config_set("stop-writes-on-bgsave-error", "no")
    items, _ = _articles(path, count, rules, seed)
    store = Store(client, prefix="bench:")
    for start in range(0, len(items), 500):
        await store.items.add_many([item_entry(i) for i in items[start : start + 500]])


async def _work(directory: Path, consumer: str, rules: int, seed: int, batch: int) -> None:
    """One worker (the script form): waits for the start, processes until the stream is
    empty, prints one JSON line."""
    from monitor.bench.match import make_workload
    from monitor.core.rules import build_config
    from monitor.roles.process import Processor, Runtime
    from monitor.store import Store
    from monitor.store.server import RedisServer
    from monitor.store.stories import StoryKeeper

    runtime = Runtime.build(build_config([("bench.yaml", make_workload(rules, 0, seed).yaml)], {}))
    async with RedisServer.embedded(directory) as client:
        store = Store(client, prefix="bench:")
        keeper = StoryKeeper(store)
        processor = Processor(store, lambda: runtime, keeper, channels=["bench"])
        await processor.start()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        if not await client.blpop([START_KEY], timeout=60):
            raise RuntimeError("no start signal")
        started, cpu = time.time(), time.process_time()
        items = batches = 0
        while taken := await processor.step(consumer, count=batch):
            items, batches = items + taken, batches + 1
        result = {
            "items": items,
            "batches": batches,
            "cpu_s": time.process_time() - cpu,
            "started": started,
            "ended": time.time(),
            "retries": dict(getattr(keeper, "retries", {})),  # none before optimistic writes
            "read_again": getattr(keeper, "read_again", 0),
        }
    sys.stdout.write(json.dumps(result) + "\n")


async def _run_async(
    workers: int,
    path: str | None,
    count: int,
    rules: int,
    seed: int,
    batch: int,
    checkout: Path | None,
) -> dict[str, Any]:
    """``workers`` worker processes on a fresh embedded Redis that this process keeps running
    (they attach to it through its directory), running this checkout's code or that in
    ``checkout``."""
    from monitor.store.server import RedisServer

    with tempfile.TemporaryDirectory(prefix="monitor-bench-workers-") as data:
        async with RedisServer.embedded(Path(data)) as client:
            await _fill(client, path, count, rules, seed)
            command = [sys.executable, str(SCRIPT), "--serve", data]
            command += ["--rules", str(rules), "--seed", str(seed), "--batch", str(batch)]
            env = {**os.environ, "PYTHONPATH": str(checkout or SCRIPT.parents[2])}
            procs = [
                await asyncio.create_subprocess_exec(
                    *command, "--consumer", f"w{n}", stdout=subprocess.PIPE, env=env
                )
                for n in range(workers)
            ]
            for proc in procs:
                assert proc.stdout is not None
                if (await proc.stdout.readline()).strip() != b"ready":
                    raise RuntimeError("a bench worker did not start")
            await client.rpush(START_KEY, *["go"] * workers)
            done = []
            for proc in procs:
                out, _ = await proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"a bench worker failed ({proc.returncode})")
                done.append(json.loads(out.decode().strip().splitlines()[-1]))
    items = sum(d["items"] for d in done)
    wall = max(d["ended"] for d in done) - min(d["started"] for d in done)
    retries: dict[str, int] = {}
    for d in done:
        for outcome, n in d["retries"].items():
            retries[outcome] = retries.get(outcome, 0) + n
    batches = sum(d["batches"] for d in done)
    read_again = sum(d["read_again"] for d in done)
    return {
        "workers": workers,
        "items": items,
        "batches": batches,
        "items_per_s": round(items / wall, 1),
        "items_per_cpu_s": round(items / sum(d["cpu_s"] for d in done), 1),
        "batches_by_worker": [d["batches"] for d in done],
        "written_again_per_batch": round(
            sum(n for k, n in retries.items() if k != "unchecked") / max(batches, 1), 3
        ),
        "retries": retries,
        "items_read_again": round(read_again / max(items, 1), 3),
    }


def measure(
    workers: int,
    path: str | None,
    count: int,
    rules: int,
    seed: int,
    batch: int = 100,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """One worker alone, then ``workers`` together, on the same articles; the same for the
    implementation in ``baseline`` (another checkout), in the same run."""
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
    }
    for name, checkout in (("current", None), ("baseline", baseline)):
        if name == "baseline" and baseline is None:
            continue
        alone = asyncio.run(_run_async(1, path, count, rules, seed, batch, checkout))
        together = asyncio.run(_run_async(workers, path, count, rules, seed, batch, checkout))
        result[name] = {
            "alone": alone,
            "together": together,
            "speedup": round(together["items_per_s"] / alone["items_per_s"], 2),
        }
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"process workers on one embedded Redis ({result['machine']})"]
    for name in ("current", "baseline"):
        if name not in result:
            continue
        lines.append(f"  {name}:")
        for run in (result[name]["alone"], result[name]["together"]):
            lines.append(
                f"    {run['workers']} worker(s): {run['items']} items in {run['batches']} batches"
                f" {run['batches_by_worker']}, {run['items_per_s']} items/s wall,"
                f" {run['items_per_cpu_s']} items per CPU-second, batches written again"
                f" {run['written_again_per_batch']} per batch {run['retries']},"
                f" items read again {run['items_read_again']} per item"
            )
        lines.append(f"    speedup (wall): {result[name]['speedup']}x")
    return "\n".join(lines)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve")
    parser.add_argument("--consumer", default="w0")
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: its modules must not shadow others
    args = _arguments(None)
    asyncio.run(_work(Path(args.serve), args.consumer, args.rules, args.seed, args.batch))
