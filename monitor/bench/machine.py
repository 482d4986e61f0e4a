"""What every bench shares: medians of repeated runs, the machine, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

from monitor.ops.progress import Advance

__all__ = ["machine", "max_rss_mib", "rate"]


def rate(
    count: int, run: Callable[[], object], repeat: int, advance: Advance | None = None
) -> tuple[float, object]:
    timings = []
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - start)
        if advance is not None:
            advance(1)
    return count / statistics.median(timings), result


def machine() -> str:
    """Architecture, CPU model and CPU count, as the figures should be quoted."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [platform.machine(), model, f"{os.cpu_count() or '?'} CPUs"]
    return ", ".join(part for part in parts if part)


def max_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB, macOS B)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if platform.system() == "Darwin" else peak / 1024
