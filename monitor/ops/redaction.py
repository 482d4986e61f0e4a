"""Secrets never reach a log line: every value the configuration took from the environment
(``${VAR}``) is masked, whichever library logged it (httpx logs request URLs).

``redact`` is what the log formatters (``monitor.logs``) and the commands' output apply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "****"
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()


def register(values: Iterable[str]) -> None:
    """Mask these values from now on (values shorter than 4 characters are not masked)."""
    global _longest_first
    _secrets.update(value for value in values if len(value) >= 4)
    # Longest first: a secret that contains another is masked whole.
    _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output, tracebacks included, never holds a secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
