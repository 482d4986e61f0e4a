"""One root error for newsmonitor; specific errors also inherit the builtin they resemble."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MonitorError(Exception):
    """Root of every error newsmonitor raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid thing in the user's configuration, located as ``path:line:col``."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class ConfigError(MonitorError, ValueError):
    """Invalid watch configuration or settings; carries every problem found, in file order."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("<config>", 0, 0, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.path, p.line, p.column, p.message)
        )
        super().__init__("\n".join(str(p) for p in self.problems))


class QuerySyntaxError(MonitorError, ValueError):
    """A query that cannot be parsed; ``offset`` is the 0-based character position in the query."""

    def __init__(self, message: str, offset: int) -> None:
        self.message = message
        self.offset = offset
        super().__init__(f"{message} (at character {offset + 1})")


class SourceError(MonitorError):
    """A source could not be read or parsed."""


class FetchErrorKind(StrEnum):
    """Why a fetch failed, in a few kinds: the ``result`` label of the poll metrics and what an
    operator sorts failures by. Set where the failure happens, never guessed from its text."""

    HTTP_429 = "http-429"
    HTTP_4XX = "http-4xx"
    HTTP_5XX = "http-5xx"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    REDIRECT = "redirect"
    INVALID_URL = "invalid-url"
    TOO_LARGE = "too-large"
    PARSE = "parse"  # a body came but gave nothing usable
    OTHER = "other"

    @classmethod
    def of_status(cls, status: int) -> FetchErrorKind:
        """The kind of an HTTP error status."""
        if status == 429:
            return cls.HTTP_429
        if 400 <= status < 500:
            return cls.HTTP_4XX
        if 500 <= status < 600:
            return cls.HTTP_5XX
        return cls.OTHER


class FetchError(SourceError):
    """A source could not be fetched; ``kind`` says why in one word (``FetchErrorKind``)."""

    def __init__(self, kind: FetchErrorKind, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class StoreError(MonitorError, ConnectionError):
    """Redis could not be reached or answered with an error."""


class DeliveryError(MonitorError):
    """A channel refused an alert; ``retryable`` tells the dispatcher whether to try again,
    ``retry_after_s`` how long the peer asked it to wait (HTTP 429 Retry-After), and
    ``uncertain`` that the request went out but no answer came (a timeout), so it may have
    arrived: the next attempt first asks the channel (``Confirms``)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        uncertain: bool = False,
    ) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.uncertain = uncertain
        super().__init__(message)
