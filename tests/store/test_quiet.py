"""Claims checked against mutes and snoozes in the script that claims them (the batch's end,
``finishing.FINISH``, through ``quiet.CLAIM_FUNCTION``)."""

from __future__ import annotations

import time

import pytest

from monitor.store import Store
from monitor.store.finishing import Claimed, Ending, Variant
from monitor.store.quiet import Claim
from monitor.store.streams import PROCESS_GROUP


async def claim_unless_quiet(store: Store, claims: list[Claim], now: float) -> list[bool | None]:
    """Each claim made in a batch's end (no alert to send): None where quiet, True where
    claimed now or already held with this value, False where another entry holds it."""
    built = [Claimed.of(c, "{}", "a1", Variant(), Variant()) for c in claims]
    ending = Ending(store, PROCESS_GROUP, [], [], built, now)
    await ending.write()
    return [None if won < 0 else bool(won) for won, _ in ending.outcomes]


@pytest.mark.parametrize(
    ("quiet", "claim", "outcome"),  # quiet: (kind, target, seconds from now it ends)
    [
        (None, Claim("floods", "s1", "s1", "1-0", 60), True),
        (("rule", "floods", 60), Claim("floods", "s1", "s1", "1-0", 60), None),
        (("story", "s1", 60), Claim("floods", "s1", "s1", "1-0", 60), None),
        # a loose tie claims the item's own story; a mute of the story it was placed in holds
        (("story", "s1", 60), Claim("floods", "s1", "s9", "1-0", 60), None),
        (("story", "s9", 60), Claim("floods", "s1", "s9", "1-0", 60), None),
        # a snooze that has ended, or one of another rule, leaves the claim alone
        (("rule", "floods", -1), Claim("floods", "s1", "s1", "1-0", 60), True),
        (("rule", "fires", 60), Claim("floods", "s1", "s1", "1-0", 60), True),
    ],
)
async def test_a_quiet_rule_or_story_claims_nothing(
    store: Store, quiet: tuple[str, str, float] | None, claim: Claim, outcome: bool | None
) -> None:
    now = time.time()  # the quiet hash expires with its last mute: the real clock
    if quiet is not None:
        kind, target, ends = quiet
        await store.set_quiet(kind, target, now + ends, now - 10)
    assert await claim_unless_quiet(store, [claim], now) == [outcome]
    held = await store.client.get(store.keys.claim(claim.rule, claim.story))
    assert held == (claim.value if outcome else None)


async def test_a_claim_is_won_once_and_kept_by_the_entry_that_won_it(store: Store) -> None:
    first = Claim("floods", "s1", "s1", "1-0", 60)
    again = Claim("floods", "s1", "s1", "1-0", 60)  # the same entry, redelivered
    other = Claim("floods", "s1", "s1", "2-0", 60)
    now = time.time()
    assert await claim_unless_quiet(store, [first, again, other], now) == [True, True, False]
    assert await claim_unless_quiet(store, [other], now) == [False]
    assert 0 < await store.client.ttl(store.keys.claim("floods", "s1")) <= 60


async def test_a_claim_needs_a_ttl(store: Store) -> None:
    with pytest.raises(ValueError, match="TTL"):
        await claim_unless_quiet(store, [Claim("floods", "s1", "s1", "1-0", 0)], time.time())
