"""The house keeps its shape: the import contracts of pyproject.toml hold, a forbidden import
breaks them, no module grows past 600 lines and the package's top holds at most 8 modules.

The contracts run through import-linter (``lint-imports``, as ``make lint`` runs it) on the
real tree and on copies of it with one bad import added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "monitor"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 600
MAX_TOP_MODULES = 8


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``monitor`` package found in ``tree`` (with its pyproject.toml)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("roles/poll.py", "import monitor.roles.process", "Roles do not import each other"),
        ("store/seen.py", "import monitor.app.settings", "Each layer imports only"),
        ("store/keys.py", "import monitor.roles.dispatch", "Each layer imports only"),
        ("sources/feed.py", "import monitor.channels.console", "Each layer imports only"),
        ("channels/console.py", "import monitor.sources.replay", "Each layer imports only"),
        ("core/text.py", "import monitor.store.keys", "Each layer imports only"),
        ("core/dedup.py", "import redis", "The core reads no clock"),
        ("core/polling.py", "import monitor.clock", "The core reads no clock"),
        ("roles/process.py", "import monitor.bench.match", "Each layer imports only"),
        ("app/daemon.py", "import monitor.bench.dedup", "Each layer imports only"),
        ("roles/dispatch.py", "import monitor.channels.slack", "Only the application's wiring"),
        ("ops/status.py", "import redis.asyncio", "Every Redis command lives in monitor.store"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(PACKAGE, tree / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    target = tree / "monitor" / module
    lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith("from __future__")) + 1
    target.write_text("".join([*lines[:at], f"{bad_import}\n", *lines[at:]]), encoding="utf-8")
    done = lint_imports(tree)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[1]
    assert contract in broken
    assert module.removesuffix(".py").replace("/", ".") in broken


def test_no_module_is_longer_than_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_top_of_the_package_holds_at_most_8_modules() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
