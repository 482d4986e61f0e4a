"""Reading the rules directory: the file side of ``core.rules.build_config``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from monitor.core.positions import MAX_BYTES
from monitor.core.rules import WatchConfig, build_config
from monitor.errors import ConfigError, Problem

SUFFIXES = (".yaml", ".yml")


def rule_files(directory: Path) -> list[Path]:
    """Every YAML file below ``directory`` (hidden files and folders skipped), in path order."""
    if directory.is_file():
        return [directory]
    return sorted(
        path
        for path in directory.rglob("*")
        if path.suffix in SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def environment(dotenv: Path = Path(".env")) -> dict[str, str]:
    """What ``${VAR}`` in a rule file resolves from: the process environment, over the
    ``.env`` file of the working directory (the file the ``MONITOR_*`` settings read too)."""
    values = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
    return {**values, **os.environ}


def load_config(directory: Path, env: Mapping[str, str] | None = None) -> WatchConfig:
    """Load and validate the watch configuration; ``ConfigError`` lists every problem."""
    if not directory.exists():
        raise ConfigError(Problem(str(directory), 0, 0, "no such file or directory"))
    documents: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for path in rule_files(directory):
        try:
            if path.stat().st_size > MAX_BYTES:  # refused unread
                problems.append(
                    Problem(str(path), 1, 1, f"the file is larger than {MAX_BYTES:,} bytes")
                )
                continue
            documents.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 0, 0, f"cannot read: {exc}"))
    if problems:
        raise ConfigError(problems)
    return build_config(documents, environment() if env is None else env)
