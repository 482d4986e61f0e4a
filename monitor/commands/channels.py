"""``monitor channels test ID``: one test alert through a configured channel, now.

The alert goes straight to the channel, as the dispatch role would send it, so the answer is the
channel's own: delivered, or its error (a wrong token, a channel the bot is not in, an SMTP
server that refuses the login). It names itself a test in its title and text, and opens a story
of its own, so it never lands in a real story's thread.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from monitor.app.settings import Settings
from monitor.app.wiring import ThreadStore, build_channels, fetch_limits
from monitor.core.rules import WatchConfig
from monitor.http import make_client
from monitor.models import Alert, Item

__all__ = ["channel_test_alert", "send_test_alert"]


def channel_test_alert(channel: str, now: datetime) -> Alert:
    """The alert ``channels test`` sends: a story of its own, no rule of the configuration."""
    key = uuid.uuid4().hex[:12]
    item = Item(
        id=f"newsmonitor-test:{key}",
        source="newsmonitor",
        title=f"newsmonitor test alert for channel {channel}",
        text=(
            "This is a test sent by `monitor channels test`. If you can read it, alerts "
            "reach this channel."
        ),
        published=now,
    )
    return Alert(
        id=f"test-{key}",
        rule="channel-test",
        rule_name="Channel test",
        severity="low",
        item=item,
        story=f"test-{key}",
        matches=(),
        channels=(channel,),
        created=now,
    )


async def send_test_alert(settings: Settings, config: WatchConfig, channel: str) -> Alert:
    """Send a test alert through ``channel``; its ``DeliveryError`` when it refuses. ValueError
    for a channel the configuration does not have."""
    spec = next((c for c in config.channels if c.id == channel), None)
    if spec is None:
        known = ", ".join(c.id for c in config.channels) or "none"
        raise ValueError(f"no channel {channel} in the rules (channels: {known})")
    client = make_client(fetch_limits(settings))
    try:
        [sender] = build_channels(
            replace(config, channels=(spec,)), client=client, threads=ThreadStore()
        ).values()
        alert = channel_test_alert(channel, datetime.now(UTC))
        try:
            await sender.send(alert)
        finally:
            await sender.close()
    finally:
        await client.aclose()
    return alert
