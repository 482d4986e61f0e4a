"""An alert carries an article's text only as far as a channel shows it (``core.alerts.shown``):
every channel renders the cut alert exactly as the whole one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.channels import email, slack_blocks, webhook
from monitor.core.alerts import TEXT_AFTER_MATCH, shown
from monitor.models import Alert, Match
from tests.factories import make_alert, make_item

WORDS = " ".join(f"word{n}" for n in range(3000))  # about 26,000 characters


def matched(text: str, *terms: str) -> list[Match]:
    return [Match("text", term, text.index(term), text.index(term) + len(term)) for term in terms]


def rendered(alert: Alert) -> list[object]:
    return [
        slack_blocks.build_message(alert),
        webhook.payload(alert),
        email.text_body(alert),
        email.html_body(alert),
    ]


@pytest.mark.parametrize(
    "terms",
    [
        (),  # a match in the title only: the text's beginning is shown
        ("word10",),
        ("word10", "word2900"),  # the last match near the end: nothing is cut
        ("word5", "word40", "word700", "word701"),
        ("word1500",),  # more matches than a channel shows: the first ones are shown
    ],
)
def test_every_channel_shows_the_cut_alert_as_the_whole_one(terms: tuple[str, ...]) -> None:
    text = f"Caracas. {WORDS} The end."
    matches = [Match("title", "maduro", 0, 6), *matched(text, *terms)]
    whole = make_alert(item=make_item(title="Maduro freed", text=text), matches=matches)
    cut = replace(whole, item=shown(whole.item, whole.matches))
    last = max((m.end for m in matches if m.field == "text"), default=0)
    assert len(cut.item.text) == min(len(text), last + TEXT_AFTER_MATCH)
    assert rendered(cut) == rendered(whole)


def test_a_short_text_is_carried_whole() -> None:
    item = make_item(text="Maduro was freed on Saturday.")
    assert shown(item, matched(item.text, "freed")) is item
