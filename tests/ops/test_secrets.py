"""Secrets come only from the environment and never show: not in logs, errors or output."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-s3cr3t-7f9e2a"
SECRET = "sig-s3cr3t-41c0d8"


class Failing(BaseHTTPRequestHandler):
    """A webhook receiver that is down: every POST gets a 500."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(self.path)
        self.send_response(500)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def run(args: list[str], rules: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOOK_TOKEN": TOKEN,
        "HOOK_SECRET": SECRET,
        "MONITOR_RULES_DIR": str(rules),
        "MONITOR_DATA_DIR": str(tmp_path / "data"),
        "MONITOR_LOG_LEVEL": "DEBUG",
    }
    env.pop("MONITOR_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_failing_webhook_run_never_shows_its_secrets(
    receiver: ThreadingHTTPServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    port = receiver.server_address[1]
    (rules / "watch.yaml").write_text(
        f"""
sources:
  - {{id: seeds, type: replay, path: '{ROOT / "seeds"}'}}
rules:
  - {{id: maduro, query: maduro, channels: [hook]}}
channels:
  - id: hook
    type: webhook
    url: http://127.0.0.1:{port}/hooks/${{HOOK_TOKEN}}?key=${{HOOK_TOKEN}}
    secret: ${{HOOK_SECRET}}
"""
    )
    result = run(["run", "--once"], rules, tmp_path)
    assert result.returncode == 0, result.stderr
    assert Failing.received and all(TOKEN in path for path in Failing.received)  # it was used
    output = result.stdout + result.stderr
    assert "HTTP 500" in output  # the failure is logged, with the host only
    assert TOKEN not in output and SECRET not in output

    check = run(["rules", "check"], rules, tmp_path)
    assert check.returncode == 0
    assert TOKEN not in check.stdout + check.stderr

    (rules / "watch.yaml").write_text(
        "sources:\n  - {id: s, type: replay, path: x, every: '${HOOK_SECRET}'}\n"
    )
    broken = run(["rules", "check"], rules, tmp_path)
    assert broken.returncode == 1
    assert "${HOOK_SECRET}" in broken.stderr and SECRET not in broken.stdout + broken.stderr
