"""Whether a daemon is healthy, from facts gathered elsewhere: pure, so it is tested from a table.

The caller (``App.health``) pings Redis, reads its role loops' heartbeats and asks whether the
poll scheduler runs; this module turns those facts into a verdict and the reasons an operator
reads in the ``/healthz`` answer. ``now`` is an argument, like every time here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HEARTBEAT_MAX_AGE_S", "Health", "assess"]

HEARTBEAT_MAX_AGE_S = 60.0
"""A role loop wakes at least every second; one silent this long is stuck."""


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict: healthy when nothing is wrong; otherwise why not, one reason per problem."""

    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """Trouble outside the daemon (a feed or channel failing: operator alerts that are out);
    shown, but not a reason to restart it."""

    @property
    def ok(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failing",
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }


def assess(
    *,
    now: float,
    redis_error: str | None,
    beats: Mapping[str, float | None],
    scheduler_running: bool | None,
    failing: Mapping[str, str] | None = None,
    max_age_s: float = HEARTBEAT_MAX_AGE_S,
) -> Health:
    """The health of a daemon.

    ``redis_error``: why Redis did not answer a PING (None: it did). ``beats``: for each role
    loop that should run, when it last beat (same clock as ``now``; None: it never did).
    ``scheduler_running``: whether the poll role's scheduler runs (None: no poll role here).
    ``failing``: the loops whose last step failed, with the error (they wait it out and retry).
    """
    reasons = []
    if redis_error is not None:
        reasons.append(f"redis: {redis_error}")
    failing = failing or {}
    for role, beat in sorted(beats.items()):
        if role in failing:
            reasons.append(f"{role}: {failing[role]}")
        elif beat is None:
            reasons.append(f"{role}: loop not started")
        elif now - beat > max_age_s:
            reasons.append(f"{role}: loop silent for {now - beat:.0f} s (limit {max_age_s:g} s)")
    if scheduler_running is False:
        reasons.append("poll: scheduler not running")
    return Health(tuple(reasons))
