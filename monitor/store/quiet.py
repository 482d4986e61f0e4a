"""Mutes, snoozes and feedback: what a desk tells the daemon about its alerts.

A muted story and a snoozed rule live in one hash, ``{p}quiet``: field ``story:{id}`` or
``rule:{id}``, value the epoch second it ends; the hash expires with its last one, and ended
fields are removed whenever it is written. The process role checks a batch's matches in the
script that claims them (``CLAIM_FUNCTION``, in the batch's end, ``finishing.FINISH``): what is
quiet is left out and nothing is claimed for it, so a snoozed rule's story alerts when the
snooze is over. Feedback on an alert is kept for ``seen_ttl`` under the alert's record
(``{p}alert:{id}``, its rule, story and title, written with the alert), and counted per rule in
``{p}feedback-counts`` (renewed with each feedback).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from monitor.store.commands import translated
from monitor.store.keys import Keys

__all__ = ["CLAIM_FUNCTION", "Claim", "Quiet"]

# ``claim(quiet, key, rule, placed, story, value, ttl, now)``: claims ``key`` with ``value``
# for ``ttl`` seconds unless the rule is snoozed or either story (the one the item was placed
# in, the one the match claims) muted in the quiet hash at ``now``. Returns -1 quiet (nothing
# claimed), 1 claimed now or already held with this value (an entry redelivered), 0 held by
# another.
CLAIM_FUNCTION = """
local function claim(quiet, key, rule, placed, story, value, ttl, now)
  for _, field in ipairs({'rule:' .. rule, 'story:' .. placed, 'story:' .. story}) do
    local ends = redis.call('HGET', quiet, field)
    if ends and tonumber(ends) > now then return -1 end
  end
  if redis.call('SET', key, value, 'NX', 'EX', ttl) then return 1 end
  if redis.call('GET', key) == value then return 1 end
  return 0
end
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A rule's match to claim: the rule, the story the item was placed in, the story the
    match claims (the same, or the item's own when its tie was loose), the value to claim with
    (the stream entry's id) and how long the claim holds (the rule's cooldown)."""

    rule: str
    placed: str
    story: str
    value: str
    ttl_s: int


class Quiet:
    """The mute, snooze and feedback state in Redis."""

    client: Redis
    keys: Keys
    seen_ttl: int

    async def set_quiet(self, kind: str, target: str, until: float, now: float) -> None:
        """Mute a story or snooze a rule until ``until`` (epoch seconds)."""
        with translated("HSET quiet"):
            await self.client.hset(self.keys.quiet, f"{kind}:{target}", f"{until:.0f}")
        await self._prune(now)

    async def clear_quiet(self, kind: str, target: str) -> bool:
        """Unmute or unsnooze; whether it was quiet."""
        with translated("HDEL quiet"):
            return bool(await self.client.hdel(self.keys.quiet, f"{kind}:{target}"))

    async def _quiet_all(self) -> dict[str, float]:
        """Every field of the hash (``kind:id``) with when it ends, ended ones included."""
        with translated("HGETALL quiet"):
            found: dict[str, str] = await self.client.hgetall(self.keys.quiet)  # type: ignore[assignment]
        return {name: float(until) for name, until in found.items()}

    async def quiet_list(self, now: float) -> list[tuple[str, str, float]]:
        """What is quiet now: (kind, id, until), soonest end first."""
        rows = []
        for name, until in (await self._quiet_all()).items():
            kind, _, target = name.partition(":")
            if until > now:
                rows.append((kind, target, until))
        return sorted(rows, key=lambda row: (row[2], row[0], row[1]))

    async def _prune(self, now: float) -> None:
        """Remove the ended fields, and let the hash expire with its last mute or snooze."""
        found = await self._quiet_all()
        ended = [name for name, until in found.items() if until <= now]
        last = max(found.values(), default=now)
        with translated("prune quiet"):
            async with self.client.pipeline(transaction=False) as pipe:
                if ended:
                    pipe.hdel(self.keys.quiet, *ended)
                if last > now:
                    pipe.expireat(self.keys.quiet, int(last) + 1)
                await pipe.execute()

    async def alert_record(self, alert: str) -> dict[str, Any] | None:
        """The rule, story and title of an alert sent lately (None: unknown or forgotten)."""
        with translated("GET alert"):
            stored = await self.client.get(self.keys.alert_record(alert))
        return json.loads(stored) if stored else None

    async def add_feedback(self, alert: str, kind: str, note: str, at: float) -> dict[str, Any]:
        """Record feedback on ``alert``; its record. LookupError for an unknown alert."""
        record = await self.alert_record(alert)
        if record is None:
            raise LookupError(f"no alert {alert} in the last {self.seen_ttl // 86400} days")
        with translated("feedback"):
            async with self.client.pipeline(transaction=False) as pipe:
                fields: dict[Any, Any] = {"kind": kind, "note": note}
                fields["at"] = f"{at:.0f}"
                fields.update({k: str(v) for k, v in record.items()})
                pipe.hset(self.keys.feedback(alert), mapping=fields)
                pipe.expire(self.keys.feedback(alert), self.seen_ttl)
                pipe.hincrby(self.keys.feedback_counts, f"{record['rule']}:{kind}", 1)
                pipe.expire(self.keys.feedback_counts, self.seen_ttl)  # counts of the last month
                await pipe.execute()
        return record

    async def feedback_counts(self) -> dict[str, dict[str, int]]:
        """Feedback per rule and kind, since the counts began."""
        with translated("HGETALL feedback-counts"):
            found: dict[str, str] = await self.client.hgetall(self.keys.feedback_counts)  # type: ignore[assignment]
        counts: dict[str, dict[str, int]] = {}
        for name, count in found.items():
            rule, _, kind = name.rpartition(":")
            counts.setdefault(rule, {})[kind] = int(count)
        return counts
