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
from urllib.parse import quote

import pytest

from monitor.ops.redaction import MASK, forms, redact, register

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


def run(
    args: list[str], rules: Path, tmp_path: Path, *, token: str = TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOOK_TOKEN": token,
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


def webhook_rules(tmp_path: Path, port: int) -> Path:
    """A rules directory: the seeds, one rule, a webhook whose URL and secret come from the
    environment."""
    rules = tmp_path / "rules"
    rules.mkdir()
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
    return rules


def test_a_failing_webhook_run_never_shows_its_secrets(
    receiver: ThreadingHTTPServer, tmp_path: Path
) -> None:
    rules = webhook_rules(tmp_path, receiver.server_address[1])
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


@pytest.mark.parametrize("token", ['odd key"III999', "clé-sécrète-ümlaut-42"])
def test_a_secret_is_masked_in_every_form_it_takes_on_the_way_out(
    receiver: ThreadingHTTPServer, tmp_path: Path, token: str
) -> None:
    """A secret with a space, a quote or non-ASCII letters, used in a URL, travels
    percent-encoded; no log line, percent-encoded, JSON-escaped or as Python shows it,
    gives it away."""
    rules = webhook_rules(tmp_path, receiver.server_address[1])
    result = run(["run", "--once"], rules, tmp_path, token=token)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "HTTP 500" in output
    for form in forms(token):
        assert form not in output, form
    assert quote(token, safe="") in Failing.received[-1]  # it was used, encoded


def test_every_form_of_a_registered_secret_is_masked() -> None:
    register(['p@ss w"rd-é'])
    for written in (
        "p%40ss%20w%22rd-%C3%A9",
        "p%40ss%20w%22rd-%c3%a9",
        "p%40ss+w%22rd-%C3%A9",
        'p@ss w\\"rd-\\u00e9',
        'p@ss w\\"rd-é',
        'p@ss w"rd-é',
    ):
        assert redact(f"GET https://h/{written}?x=1") == f"GET https://h/{MASK}?x=1", written
