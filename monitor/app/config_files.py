"""Reading the rules directory: the file side of ``core.rules.build_config``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
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


class WithoutSecrets(Mapping[str, str]):
    """An environment in which every unset variable reads as ``UNSET`` (and is noted in
    ``missing``): for the commands that never send (``status``, ``sources list``, ``rules
    test``…), a channel's token that is not set here must not stop them."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.missing: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str:
        if name in self.env:
            return self.env[name]
        self.missing.add(name)
        return UNSET

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


UNSET = "-"  # too short to be taken for a secret and masked in output


def load_config(
    directory: Path, env: Mapping[str, str] | None = None, *, sends: bool = True
) -> WatchConfig:
    """Load and validate the watch configuration; ``ConfigError`` lists every problem.

    ``sends=False`` (a command that sends nothing): a ``${VAR}`` that is not set is not a
    problem, unless the value it would give is refused (a URL); it is named in the config's
    warnings."""
    if not sends:
        lenient = WithoutSecrets(environment() if env is None else env)
        config = load_config(directory, lenient)
        unset = tuple(
            Problem(str(directory), 0, 0, f"warning: {name} is not set (nothing is sent here)")
            for name in sorted(lenient.missing)
        )
        return replace(config, warnings=config.warnings + unset)
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
