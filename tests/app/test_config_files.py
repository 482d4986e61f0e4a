"""Reading the rules directory: secrets from the environment or the .env file, file limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app.config_files import load_config
from monitor.core.positions import MAX_BYTES
from monitor.errors import ConfigError

RULES = """
sources:
  - id: wire
    type: wire
    url: https://wire.example/v1
    headers: {Authorization: 'Bearer ${WIRE_TOKEN}'}
"""


def rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sources.yaml").write_text(RULES)
    return rules


def test_a_variable_resolves_from_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WIRE_TOKEN", raising=False)
    (tmp_path / ".env").write_text("WIRE_TOKEN=from-dotenv-1234\n")
    config = load_config(rules_dir(tmp_path))
    assert "from-dotenv-1234" in config.secrets


def test_the_environment_wins_over_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WIRE_TOKEN", "from-environment-5678")
    (tmp_path / ".env").write_text("WIRE_TOKEN=from-dotenv-1234\n")
    config = load_config(rules_dir(tmp_path))
    assert "from-environment-5678" in config.secrets
    assert "from-dotenv-1234" not in config.secrets


def test_without_either_the_variable_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WIRE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="environment variable WIRE_TOKEN is not set"):
        load_config(rules_dir(tmp_path))


def test_a_file_too_large_is_refused_unread(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path)
    with (rules / "huge.yaml").open("wb") as out:
        out.truncate(MAX_BYTES + 1)  # sparse: large without being written
    with pytest.raises(ConfigError) as caught:
        load_config(rules, env={"WIRE_TOKEN": "x-secret"})
    assert [str(p) for p in caught.value.problems] == [
        f"{rules / 'huge.yaml'}:1:1: the file is larger than {MAX_BYTES:,} bytes"
    ]


def test_an_unset_secret_reads_as_a_placeholder_never_masked_in_output(tmp_path: Path) -> None:
    """Commands that send nothing load the rules without their secrets; the placeholder must
    not become a "secret" that masks an ordinary word wherever it appears."""
    from monitor.app.config_files import load_config

    (tmp_path / "channels.yaml").write_text(
        'channels:\n  - {id: s, type: slack, token: "${NM_UNSET_FOR_TEST}", channel: C1}\n'
    )
    config = load_config(tmp_path, {}, sends=False)
    assert [str(w) for w in config.warnings] == [
        f"{tmp_path}: warning: NM_UNSET_FOR_TEST is not set (nothing is sent here)"
    ]
    assert not config.secrets  # nothing to mask: "unset" in a headline stays "unset"
