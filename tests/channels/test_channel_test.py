"""``monitor channels test ID``: one test alert through the real channel, to a local Slack."""

from __future__ import annotations

import pytest

from monitor.app.settings import Settings
from monitor.commands.channels import send_test_alert
from monitor.core.rules import WatchConfig, build_config
from monitor.errors import DeliveryError
from tests.channels.slack_server import FakeSlack, Reply


def config_for(fake: FakeSlack) -> WatchConfig:
    text = f"""
channels:
  - id: desk
    type: slack
    token: "${{TOKEN}}"
    channel: C0DESK
    api_url: {fake.api_url}
"""
    return build_config([("channels.yaml", text)], {"TOKEN": fake.token})


async def test_a_test_alert_reaches_the_channel(fake: FakeSlack) -> None:
    alert = await send_test_alert(Settings(), config_for(fake), "desk")
    [message] = fake.messages
    assert message["channel"] == "C0DESK"
    assert "newsmonitor test alert for channel desk" in str(message)
    assert alert.story.startswith("test-") and alert.channels == ("desk",)


async def test_the_channels_refusal_is_the_answer(fake: FakeSlack) -> None:
    fake.plan(Reply(200, {"ok": False, "error": "not_in_channel"}))
    with pytest.raises(DeliveryError, match="not_in_channel"):
        await send_test_alert(Settings(), config_for(fake), "desk")
    assert fake.messages == []


async def test_an_unknown_channel_is_named(fake: FakeSlack) -> None:
    with pytest.raises(ValueError, match="no channel nope in the rules \\(channels: desk\\)"):
        await send_test_alert(Settings(), config_for(fake), "nope")
