"""Structured log lines: ``key=value`` text for people, JSON lines for log collectors.

Every record becomes exactly one line with the same keys in both formats: ``ts`` (UTC,
milliseconds), ``level``, ``logger``, ``msg``, then the record's context fields (``source``,
``rule``, ``story``, ``alert``, ``item``, ``channel``, …) and, last, ``exc`` (the traceback,
escaped onto the line). Secrets registered in ``monitor.ops.redaction`` are masked in every value:
the message, its arguments, the context fields and the traceback.

Attach context with ``extra=context(...)``, so that lines can be searched by id::

    from monitor.ops.logs import context

    logger.info("sent %s", alert.id, extra=context(alert=alert.id, rule=alert.rule, channel=c))

A value of None is left out; any attribute given through ``extra=`` becomes a field too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from monitor.ops.redaction import redact

__all__ = ["JsonFormatter", "TextFormatter", "configure", "context", "record_fields"]

LogFormat = Literal["text", "json"]

BASE_KEYS = ("ts", "level", "logger", "msg")
EXC_KEY = "exc"
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12 adds it to every record
}
_NEEDS_QUOTES = re.compile(r'[\s"=\\]|^$', re.UNICODE)
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]")
# Characters some readers take for a line break (str.splitlines does), besides \n and \r.
_LINE_BREAKS = {"\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
NOISY_LOGGERS = ("httpx", "httpcore")  # httpx logs every request at INFO


def context(**values: object) -> dict[str, object]:
    """Context fields for ``extra=``: ``source``, ``rule``, ``story``, ``alert``, ``item``,
    ``channel``…; None values are dropped. A name ``logging`` itself uses is refused at once
    (logging would refuse it only when the line is written)."""
    clash = sorted(name for name in values if name in _RESERVED or name in (*BASE_KEYS, EXC_KEY))
    if clash:
        raise ValueError(f"reserved log field names: {', '.join(clash)}")
    return {name: value for name, value in values.items() if value is not None}


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The context fields of ``record``: whatever ``extra=`` put on it, None values left out."""
    return {
        name: value
        for name, value in vars(record).items()
        if name not in _RESERVED and not name.startswith("_") and value is not None
    }


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _plain(value: object) -> Any:
    """A JSON-ready value, every string in it redacted."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(part) for part in value]
    return redact(str(value))


class _StructuredFormatter(logging.Formatter):
    """Builds the ordered, redacted key → value mapping both formats print."""

    def mapping(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name, value in record_fields(record).items():
            out[_UNSAFE_KEY.sub("_", name)] = _plain(value)
        exc = self._exception(record)
        if exc:
            out[EXC_KEY] = redact(exc)
        return out

    def _exception(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


class TextFormatter(_StructuredFormatter):
    """``ts=… level=info logger=… msg="…" source=…``: one line, values quoted when needed."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={text_value(value)}" for key, value in self.mapping(record).items())


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line, the same keys as the text format."""

    def format(self, record: logging.LogRecord) -> str:
        line = json.dumps(self.mapping(record), ensure_ascii=False, separators=(",", ":"))
        for char in _LINE_BREAKS & set(line):  # json leaves these raw; escape them
            line = line.replace(char, f"\\u{ord(char):04x}")
        return line


def text_value(value: object) -> str:
    """A value as the text format writes it: bare when that is unambiguous, else quoted with
    backslash escapes, so that a record stays on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ",".join(str(part) for part in value)
    text = str(value)
    if not _NEEDS_QUOTES.search(text) and not any(_escape_needed(c) for c in text):
        return text
    return '"' + "".join(_escaped(char) for char in text) + '"'


def _escape_needed(char: str) -> bool:
    return char < " " or char == "\x7f" or char in _LINE_BREAKS


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if _escape_needed(char):
        return f"\\u{ord(char):04x}"
    return char


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of the record (a progress display, or
    a test runner, may swap it), never to a stream that was closed since."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(
    level: str = "INFO",
    log_format: LogFormat = "text",
    *,
    quiet: Mapping[str, int] | None = None,
) -> logging.Handler:
    """Send every log record to stderr in ``log_format`` from ``level`` up.

    Calling it again replaces the handler it installed before (and no other). Libraries that
    log every request (httpx) are held at WARNING unless ``level`` is DEBUG; ``quiet`` sets
    the minimum level of further loggers.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)
    numeric = logging.getLevelName(level)
    if level != "DEBUG":
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    for name, minimum in (quiet or {}).items():
        logging.getLogger(name).setLevel(max(minimum, numeric))
    return handler


def in_force() -> tuple[str, LogFormat]:
    """The level and format ``configure`` set last (a process worker logs the same way)."""
    root = logging.getLogger()
    level = logging.getLevelName(root.level)
    for handler in root.handlers:
        if isinstance(handler, _StderrHandler):
            return level, "json" if isinstance(handler.formatter, JsonFormatter) else "text"
    return level, "text"
