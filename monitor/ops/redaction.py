"""Secrets never reach a log line: every value the configuration took from the environment
(``${VAR}``) is masked, whichever library logged it (httpx logs request URLs), in every form it
can take on the way out: as it is, percent-encoded in a URL (either case of hex, ``+`` or
``%20`` for a space), escaped in JSON (ASCII-only or not), as Python shows it in a traceback.

``redact`` is what the log formatters (``monitor.logs``) and the commands' output apply.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "****"
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()


def forms(value: str) -> set[str]:
    """The ways ``value`` can be written out by a URL, a JSON document or a traceback."""
    found = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    found.add(repr(value)[1:-1])
    for encoded in (quote(value, safe=""), quote(value, safe="/:@"), quote_plus(value)):
        found.add(encoded)
        found.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded))
    return found


def register(values: Iterable[str]) -> None:
    """Mask these values from now on, in each of their ``forms`` (values shorter than 4
    characters are not masked)."""
    global _longest_first
    _secrets.update(
        form for value in values if len(value) >= 4 for form in forms(value) if len(form) >= 4
    )
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
