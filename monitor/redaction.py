"""Secrets never reach a log line: a formatter that masks every value the configuration took
from the environment (``${VAR}``), whichever library logged it (httpx logs request URLs)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "****"
_secrets: set[str] = set()


def register(values: Iterable[str]) -> None:
    """Mask these values from now on (values shorter than 4 characters are not masked)."""
    _secrets.update(value for value in values if len(value) >= 4)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output, tracebacks included, never holds a secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
