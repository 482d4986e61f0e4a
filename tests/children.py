"""Code run in a fresh Python process, for what only a process of its own can show (its peak
memory, what it loads)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_child(code: str, stdin: bytes = b"", *, timeout: float = 60) -> dict[str, Any]:
    """Run ``code`` at the project's root; the JSON object it printed. The test fails with the
    child's traceback when it did not exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome
