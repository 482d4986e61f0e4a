"""Structured logs: one line per record, key=value or JSON, context ids, secrets masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.ops.logs import JsonFormatter, TextFormatter, configure, context, text_value
from monitor.ops.redaction import MASK, register

ROOT = Path(__file__).resolve().parents[2]
SECRET = "logs-s3cr3t-5b1e77"
register([SECRET])

TEXT_LINE = re.compile(
    r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(\w+) logger=(\S+) "
    r'msg=("(?:[^"\\]|\\.)*"|\S+)'
)
PAIR = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_text(line: str) -> dict[str, str]:
    """The inverse of the text format, as a log collector would read it."""
    out = {}
    for key, raw in PAIR.findall(line):
        if raw.startswith('"'):
            raw = json.loads(raw)  # the escapes used are a subset of JSON's
        out[key] = raw
    return out


def record(
    msg: str,
    *args: object,
    level: int = logging.INFO,
    exc: bool = False,
    **fields: object,
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"boom\nsecond line {SECRET}")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.getLogger("monitor.test").makeRecord(
        "monitor.test", level, __file__, 1, msg, args, exc_info, extra=context(**fields)
    )
    return made


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("seeds", "seeds"),
        ("seeds:b386a2bb", "seeds:b386a2bb"),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("tab\there", '"tab\\there"'),
        ("C:\\path", '"C:\\\\path"'),
        ("para\u2028sep", '"para\\u2028sep"'),
        ("bell\x07", '"bell\\u0007"'),
        ("Nicolás", "Nicolás"),
        (3, "3"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        (["a", "b"], "a,b"),
    ],
)
def test_text_values_are_quoted_only_when_needed(value: Any, shown: str) -> None:
    assert text_value(value) == shown


def test_text_line_has_the_base_keys_then_the_context() -> None:
    line = TextFormatter().format(
        record("sent %s on %s", "a1", "desk", source="seeds", rule="maduro-release", story="s1")
    )
    match = TEXT_LINE.match(line)
    assert match, line
    assert match.group(1) == "info" and match.group(2) == "monitor.test"
    assert list(parse_text(line)) == ["ts", "level", "logger", "msg", "source", "rule", "story"]
    assert parse_text(line)["msg"] == "sent a1 on desk"
    assert line.endswith("source=seeds rule=maduro-release story=s1")


def test_json_line_has_the_same_keys_and_values() -> None:
    made = record("sent %s", "a1", level=logging.WARNING, alert="a1", item="seeds:1", count=3)
    as_json = json.loads(JsonFormatter().format(made))
    as_text = parse_text(TextFormatter().format(made))
    assert (
        list(as_json)
        == list(as_text)
        == [
            "ts",
            "level",
            "logger",
            "msg",
            "alert",
            "item",
            "count",
        ]
    )
    assert as_json["level"] == "warning" and as_json["count"] == 3
    assert {k: str(v) for k, v in as_json.items()} == as_text


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_a_record_is_one_line_tracebacks_included(formatter: logging.Formatter) -> None:
    made = record("first\nsecond\r\nthird\u2028fourth", exc=True, source="multi\nline")
    line = formatter.format(made)
    assert len(line.splitlines()) == 1
    fields = json.loads(line) if isinstance(formatter, JsonFormatter) else parse_text(line)
    assert fields["msg"] == "first\nsecond\r\nthird\u2028fourth"
    assert fields["source"] == "multi\nline"
    assert fields["exc"].startswith("Traceback (most recent call last):")
    assert "ValueError: boom\nsecond line" in fields["exc"]
    assert list(fields)[-1] == "exc"


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_secrets_are_masked_everywhere(formatter: logging.Formatter) -> None:
    made = record(
        f"fetching https://wire.example.org/?key={SECRET}: %s",
        f"HTTP 401 for token {SECRET}",
        exc=True,
        source=f"wire-{SECRET}",
        url=f"https://x/{SECRET}",
        headers=[f"Bearer {SECRET}"],
    )
    line = formatter.format(made)
    assert SECRET not in line
    assert line.count(MASK) >= 6  # msg, its argument, three fields, the exception


def test_context_drops_none_and_refuses_reserved_names() -> None:
    assert context(source="s", rule=None) == {"source": "s"}
    for name in ("msg", "name", "exc", "ts", "levelname"):
        with pytest.raises(ValueError, match=name):
            context(**{name: "x"})


def test_fields_given_through_plain_extra_are_kept() -> None:
    made = logging.getLogger("monitor.test").makeRecord(
        "monitor.test", logging.INFO, __file__, 1, "hi", (), None, extra={"channel": "desk"}
    )
    assert json.loads(JsonFormatter().format(made))["channel"] == "desk"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``configure`` changes the root logger: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_configure_replaces_its_own_handler_and_writes_to_the_current_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    others = [
        h for h in root.handlers if not isinstance(h.formatter, TextFormatter | JsonFormatter)
    ]
    configure("INFO", "text")
    handler = configure("INFO", "json")
    assert root.handlers == [*others, handler]
    assert isinstance(handler.formatter, JsonFormatter)
    logging.getLogger("monitor.test").info("ready", extra=context(source="seeds"))
    logging.getLogger("monitor.test").debug("not shown")
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if '"logger":"monitor.test"' in x]
    assert json.loads(line)["source"] == "seeds" and json.loads(line)["msg"] == "ready"
    assert "not shown" not in err


def invoke(args: list[str], tmp_path: Path, **env: str) -> Any:
    return CliRunner().invoke(
        main,
        args,
        env={
            "MONITOR_DATA_DIR": str(tmp_path / "data"),
            "MONITOR_RULES_DIR": str(ROOT / "rules"),
            "MONITOR_REDIS_URL": None,
            "MONITOR_LOG_FORMAT": None,
            **env,
        },
        catch_exceptions=False,
    )


@pytest.mark.usefixtures("root_logging")
def test_run_logs_json_lines_with_ids(tmp_path: Path) -> None:
    result = invoke(["--log-format", "json", "run", "--once"], tmp_path)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    polled = [r for r in records if r["logger"] == "monitor.roles.poll"]
    assert polled and all(r["source"] == "seeds" for r in polled)
    alerts = [r for r in records if r["msg"].startswith("alert: ")]
    assert alerts
    for alert in alerts:
        assert {"source", "rule", "story", "alert", "item"} <= set(alert)
    duplicates = [r for r in records if r["msg"].startswith("duplicate of ")]
    assert [(r["source"], bool(r["item"]), bool(r["story"])) for r in duplicates] == [
        ("seeds", True, True)
    ]


@pytest.mark.usefixtures("root_logging")
def test_the_setting_chooses_the_format_and_the_option_wins(tmp_path: Path) -> None:
    by_setting = invoke(["run", "--once"], tmp_path, MONITOR_LOG_FORMAT="json")
    assert by_setting.exit_code == 0
    assert all(line.startswith("{") for line in by_setting.stderr.splitlines())
    by_option = invoke(
        ["--log-format", "text", "run", "--once"], tmp_path, MONITOR_LOG_FORMAT="json"
    )
    assert by_option.exit_code == 0
    lines = by_option.stderr.splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines)
