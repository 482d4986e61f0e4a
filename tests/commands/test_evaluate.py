"""``monitor eval stories``: the follow-up decisions scored one by one."""

from __future__ import annotations

import pytest

from monitor.commands.evaluate import Ties

CLUSTERS = {"a": "quake", "b": "quake", "c": "budget", "d": "strike"}


@pytest.mark.parametrize(
    ("ties", "counted", "right", "precision"),
    [
        ([], 0, 0, 1.0),
        ([("b", "a")], 1, 1, 1.0),
        ([("b", "a"), ("d", "c")], 2, 1, 0.5),
        ([("d", "c"), ("c", "gone")], 2, 0, 0.0),  # a matched item the set does not label
    ],
)
def test_a_follow_up_tie_is_right_when_it_matched_a_report_of_the_same_event(
    ties: list[tuple[str, str]], counted: int, right: int, precision: float
) -> None:
    scored = Ties.of(ties, CLUSTERS)
    assert (scored.ties, scored.right, scored.precision) == (counted, right, precision)
    assert scored.as_dict() == {"ties": counted, "right": right, "precision": precision}
