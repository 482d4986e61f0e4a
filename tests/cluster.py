"""A real Redis Cluster of three masters on loopback ports, started for the tests with
``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

MASTERS = 3
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Ports free on loopback whose cluster bus ports are free too."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + BUS_OFFSET < 65536 and port not in found and _free(port + BUS_OFFSET):
            found.append(port)
    return found


def _cli(cli: str, *args: str, timeout: float = 30.0) -> str:
    done = subprocess.run(
        [cli, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout + done.stderr


def _until(condition: object, what: str, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"local Redis Cluster: {what} not reached in {within_s:g} s")
        time.sleep(0.1)


@contextmanager
def local_cluster(directory: Path) -> Iterator[str]:
    """Start the cluster's nodes in ``directory``, join them, and yield its URL; stop them."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("a local Redis Cluster needs redis-server and redis-cli on PATH")
    ports = free_ports(MASTERS)
    nodes = []
    try:
        for port in ports:
            nodes.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(directory / f"nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "5000",
                        "--dir",
                        str(directory),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            _until(lambda p=port: "PONG" in _cli(cli, "-p", str(p), "ping"), f"node {port} up")
        created = _cli(
            cli,
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            timeout=60,
        )
        if "[OK] All 16384 slots covered" not in created:
            raise RuntimeError(f"local Redis Cluster not created: {created[-500:]}")
        for port in ports:
            _until(
                lambda p=port: "cluster_state:ok" in _cli(cli, "-p", str(p), "cluster", "info"),
                f"node {port} sees the cluster",
            )
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            with suppress(subprocess.TimeoutExpired):
                node.wait(timeout=10)
