"""The one clock type: seconds since the epoch, like ``time.time``.

Every role and source that needs the time takes it as a keyword argument ``clock: Clock``
(default ``system_clock``), keeps it as ``self.clock``, and reads it where it needs "now"; tests
pass a function they move. ``utc_now(clock)`` gives the same instant as an aware datetime.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock", "utc_now"]

Clock = Callable[[], float]
"""A function returning the current time as epoch seconds."""


def system_clock() -> float:
    """The machine's clock."""
    return time.time()


def utc_now(clock: Clock = system_clock) -> datetime:
    """``clock``'s now as an aware UTC datetime."""
    return datetime.fromtimestamp(clock(), UTC)
