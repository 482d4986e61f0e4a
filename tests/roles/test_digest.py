"""Digests and quiet hours on real Redis, delivered to real local peers (Slack, SMTP).

The dispatchers run on a clock the test moves, so a period ends when the test says; everything
else (the held alerts, their buckets, the digest entries) lives in Redis as in production.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from monitor.channels.console import ConsoleChannel
from monitor.channels.email import EmailChannel
from monitor.channels.slack import SlackChannel
from monitor.channels.slack_blocks import MAX_BLOCKS, MESSAGE_LIMIT, SECTION_LIMIT, build_digest
from monitor.core.rules import WatchConfig, build_config
from monitor.models import Alert, Digest, Item, Severity
from monitor.roles.dispatch import ORPHANED, Dispatcher, delivery_id
from monitor.store import Store
from monitor.store.streams import DISPATCH_GROUP as GROUP
from tests.channels.slack_server import FakeSlack
from tests.channels.smtp_server import smtp_server
from tests.factories import make_alert, make_item

START = datetime(2026, 11, 22, 10, 5, tzinfo=UTC).timestamp()
HOUR_END = datetime(2026, 11, 22, 11, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def alert(n: int, *, story: str | None = None, severity: Severity = "normal") -> Alert:
    item = make_item(
        f"wire:{n}",
        source=f"outlet-{n % 3}",
        title=f"Story {n} headline",
        text=f"Report number {n}.",
        url=f"https://news.example/{n}",
    )
    return make_alert(
        f"a{n:03d}",
        item=item,
        rule="desk",
        rule_name="Desk rule",
        severity=severity,
        story=story or f"s{n}",
        channels=("slack",),
        followup=story is not None and n % 2 == 1,
        created=datetime.fromtimestamp(START + n, UTC),
    )


def config(channel_extra: str = "", rule_extra: str = "") -> WatchConfig:
    text = f"""
channels:
  - {{id: slack, type: slack, webhook_url: "http://127.0.0.1:1/hook"{channel_extra}}}
rules:
  - {{id: desk, query: story, channels: [slack]{rule_extra}}}
"""
    return build_config([("watch.yaml", text)], {})


async def queue(store: Store, alerts: list[Alert], channel: str = "slack") -> None:
    await store.outbox.add_many([{"channel": channel, "alert": a.to_dict()} for a in alerts])


@pytest.fixture
async def opened() -> AsyncIterator[list[SlackChannel]]:
    """Slack channels a test opened, closed after it."""
    channels: list[SlackChannel] = []
    yield channels
    for channel in channels:
        await channel.close()


def slack(fake: FakeSlack, store: Store, opened: list[SlackChannel]) -> SlackChannel:
    channel = SlackChannel(
        "slack", webhook_url=fake.webhook_url, token=None, channel=None, threads=store
    )
    opened.append(channel)
    return channel


def dispatcher(store: Store, channel: object, watch: WatchConfig, clock: Clock) -> Dispatcher:
    return Dispatcher(
        store,
        {"slack": channel},  # type: ignore[dict-item]
        reclaim_idle_ms=0,  # entries a stopped dispatcher left are taken over at once
        clock=clock,
        config=lambda: watch,
    )


async def run_at(dispatcher: Dispatcher, clock: Clock, when: float) -> None:
    """Move the clock to ``when``, then let the dispatcher work until its outbox is empty."""
    clock.now = when
    while await dispatcher.step("one", count=100):
        pass


def text_of(payload: dict[str, object]) -> str:
    return json.dumps(payload.get("blocks"), ensure_ascii=False)


async def test_thirty_alerts_in_one_period_arrive_as_one_message_listing_all_thirty(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(", digest: 1h")
    clock = Clock(START)
    channel = slack(fake, store, opened)
    # Three stories carry two alerts each: the digest lists them together.
    alerts = [alert(n, story=f"shared-{n // 2}" if n < 6 else None) for n in range(30)]

    first = dispatcher(store, channel, watch, clock)
    await first.start()
    await queue(store, alerts[:10])
    await first.step("one", count=100)
    # The daemon stops mid-period: 5 more alerts were read but never handled, and the rest
    # arrive while it is down; a new dispatcher takes over.
    await queue(store, alerts[10:15])
    assert len(await store.outbox.read(GROUP, "one", 100)) == 5
    await queue(store, alerts[15:])
    clock.now = START + 600
    second = dispatcher(store, channel, watch, clock)
    await second.start()
    while await second.step("two", count=100):
        pass
    assert fake.received == []  # held until the period ends
    assert await store.held_count() == 1

    clock.now = HOUR_END + 1
    await second.step("two", count=100)
    await second.step("two", count=100)

    assert len(fake.received) == 1 and len(fake.digests) == 1
    text = text_of(fake.digests[0])
    assert "30 alerts in 27 stories" in text
    for n in range(30):
        assert text.count(f"Story {n} headline") == 1, n
    # a story's alerts sit together: the second alert of a shared story follows its first
    assert text.index("Story 1 headline") > text.index("Story 0 headline")
    assert text.index("Story 1 headline") < text.index("Story 2 headline")
    assert await store.held_count() == 0
    assert await store.outbox.pending_count(GROUP) == 0

    # The alerts went out in the digest: a redelivered copy of one is not sent again.
    await queue(store, alerts[:1])
    await second.step("two", count=100)
    assert len(fake.received) == 1


async def test_a_digest_entry_delivered_twice_goes_out_once(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(", digest: 15m")
    clock = Clock(START)
    one = dispatcher(store, slack(fake, store, opened), watch, clock)
    await one.start()
    await queue(store, [alert(1), alert(2)])
    await one.step("one")
    clock.now = START + 15 * 60
    assert await one.release_digests(clock.now) == 1
    entries = await store.outbox.read(GROUP, "one", 10)
    assert len(entries) == 1
    await one.deliver(entries)
    await one.deliver(entries)  # as after a crash between sending and acknowledging
    assert len(fake.digests) == 1


async def test_alerts_held_after_a_digest_went_out_start_the_next_one(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(", digest: 15m")
    clock = Clock(START)
    one = dispatcher(store, slack(fake, store, opened), watch, clock)
    await one.start()
    await queue(store, [alert(1)])
    await one.step("one")
    await run_at(one, clock, START + 15 * 60)
    await queue(store, [alert(2)])
    await one.step("one")
    await run_at(one, clock, START + 30 * 60)
    assert len(fake.digests) == 2
    assert "Story 1 headline" in text_of(fake.digests[0])
    assert "Story 2 headline" in text_of(fake.digests[1])
    assert "Story 1 headline" not in text_of(fake.digests[1])


async def test_quiet_hours_hold_all_but_critical_until_they_end(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(', quiet_hours: "22:00-07:00 Europe/Berlin"')
    night = datetime(2026, 11, 22, 23, 30, tzinfo=UTC).timestamp()  # 00:30 in Berlin
    morning = datetime(2026, 11, 23, 6, 0, tzinfo=UTC).timestamp()  # 07:00 in Berlin
    clock = Clock(night)
    one = dispatcher(store, slack(fake, store, opened), watch, clock)
    await one.start()
    await queue(store, [alert(1), alert(2, severity="critical"), alert(3, severity="high")])
    await one.step("one")
    assert dict(fake.delivered) == {"a002": 1}  # critical goes out at once

    clock.now = morning - 1
    await one.step("one")
    assert len(fake.received) == 1
    await run_at(one, clock, morning)
    assert len(fake.digests) == 1  # two held alerts: one digest
    text = text_of(fake.digests[0])
    assert "Story 1 headline" in text and "Story 3 headline" in text
    assert "quiet hours" in text


async def test_one_alert_held_by_quiet_hours_goes_out_as_itself(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(', quiet_hours: "22:00-07:00 Europe/Berlin"')
    clock = Clock(datetime(2026, 11, 22, 23, 30, tzinfo=UTC).timestamp())
    one = dispatcher(store, slack(fake, store, opened), watch, clock)
    await one.start()
    await queue(store, [alert(1)])
    await one.step("one")
    assert fake.received == []
    await run_at(one, clock, datetime(2026, 11, 23, 6, 0, tzinfo=UTC).timestamp())
    assert dict(fake.delivered) == {"a001": 1} and fake.digests == []


async def test_a_rule_digest_overrides_its_channel(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    clock = Clock(START)
    held = dispatcher(store, slack(fake, store, opened), config("", ", digest: 15m"), clock)
    await held.start()
    await queue(store, [alert(1)])
    await held.step("one")
    assert fake.received == []

    at_once = dispatcher(
        store, slack(fake, store, opened), config(", digest: 1h", ", digest: off"), clock
    )
    await queue(store, [alert(2)])
    await at_once.step("one")
    assert dict(fake.delivered) == {"a002": 1}


async def test_an_email_digest_lists_every_alert_in_both_parts(store: Store) -> None:
    with smtp_server() as server:
        channel = EmailChannel(
            "slack",  # routed by id: the config's channel "slack" holds the digest
            host=server.host,
            port=server.port,
            tls="none",
            sender="monitor@example.org",
            to=["desk@example.org"],
        )
        clock = Clock(START)
        one = dispatcher(store, channel, config(", digest: 15m"), clock)
        await one.start()
        await queue(store, [alert(1), alert(2), alert(3, story="s2")])
        await one.step("one")
        await run_at(one, clock, START + 15 * 60)
        await asyncio.sleep(0)
        assert len(server.handler.received) == 1
        message = server.handler.received[0].message()
    assert message["Subject"].startswith("[digest] 3 alerts in 2 stories")
    assert message["Message-ID"].startswith("<digest.")
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    for n in (1, 2, 3):
        assert f"Story {n} headline" in plain.get_content()
        assert f"Story {n} headline" in html.get_content()


async def test_a_console_digest_groups_by_story(store: Store) -> None:
    out = io.StringIO()
    clock = Clock(START)
    one = dispatcher(store, ConsoleChannel("slack", stream=out), config(", digest: 15m"), clock)
    await one.start()
    await queue(store, [alert(1), alert(2, story="s1")])
    await one.step("one")
    assert out.getvalue() == ""
    await run_at(one, clock, START + 15 * 60)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[digest] 2 alerts in 1 story (15m")
    assert len(lines) == 3


def test_a_huge_slack_digest_stays_within_every_limit_and_counts_what_it_leaves_out() -> None:
    alerts = tuple(alert(n) for n in range(2000))
    digest = Digest(
        id="d", channel="slack", alerts=alerts, due=datetime.fromtimestamp(HOUR_END, UTC)
    )
    message = build_digest(digest)
    blocks = message.block_dicts()
    assert len(blocks) <= MAX_BLOCKS
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(t) <= SECTION_LIMIT for t in texts)
    assert sum(len(t) for t in texts) <= MESSAGE_LIMIT
    shown = sum(t.count("headline") for t in texts)
    assert 0 < shown < 2000
    more = blocks[-1]["elements"][0]["text"]
    assert f"{2000 - shown} more stories ({2000 - shown} alerts)" in more


def test_a_digest_with_one_huge_story_is_packed_line_by_line_within_limits() -> None:
    long = "x" * 250
    alerts = tuple(
        Alert(
            id="big",
            rule="desk",
            rule_name="Desk rule " + "y" * 150,
            severity="high",
            item=Item(
                id=f"i{n}",
                source="outlet " + "z" * 100,
                title=f"Story {n} headline " + "w" * 500,
                text="",
                url=f"https://news.example/{n}/{long}/{long}/{long}/{long}",
            ),
            story="one",
            matches=(),
            channels=("slack",),
            followup=n > 0,
        )
        for n in range(11)
    )
    digest = Digest(id="d", channel="slack", alerts=alerts, due=datetime.now(UTC))
    blocks = build_digest(digest).block_dicts()  # validates each block
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(t) <= SECTION_LIMIT for t in texts)
    assert sum(t.count("headline") for t in texts) == 11


async def test_an_alert_held_as_its_bucket_is_released_goes_out_in_the_next_digest(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(", digest: 15m")
    clock = Clock(START)
    one = dispatcher(store, slack(fake, store, opened), watch, clock)
    await one.start()
    await queue(store, [alert(1)])
    await one.step("one")
    boundary = START + 10 * 60  # 10:15
    clock.now = boundary
    assert await one.release_digests(clock.now) == 1
    # Another dispatcher, its clock a little behind, holds an alert into the released bucket.
    late = dispatcher(store, slack(fake, store, opened), watch, Clock(boundary - 1))
    await queue(store, [alert(2)])
    await late.deliver(await store.outbox.read(GROUP, "late", 10))  # the digest, then alert 2
    assert len(fake.digests) == 1
    assert await store.held_count() == 1  # scheduled again, not lost
    for _ in range(3):
        await one.step("one")
    assert len(fake.digests) == 2
    assert "Story 1 headline" in text_of(fake.digests[0])
    assert "Story 2 headline" in text_of(fake.digests[1])


async def test_a_digest_whose_alerts_expired_is_a_dead_letter_not_a_silent_success(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    clock = Clock(START)
    one = dispatcher(store, slack(fake, store, opened), config(", digest: 15m"), clock)
    await one.start()
    await queue(store, [alert(1)])
    await one.step("one")
    clock.now = START + 15 * 60
    await one.release_digests(clock.now)
    [(_, payload)] = await store.outbox.read(GROUP, "one", 10, None) or [("", {})]
    await store.client.delete(payload["digest"]["sealed"])  # as if its TTL ran out
    await store.outbox.add_many([payload])
    await one.step("one")
    assert fake.received == []
    [(_, letter)] = await store.dead_letters()
    assert "gone from Redis" in letter["reason"]


async def test_an_orphaned_send_is_settled_not_held_by_quiet_hours(
    store: Store, fake: FakeSlack, opened: list[SlackChannel]
) -> None:
    watch = config(', quiet_hours: "22:00-07:00 Europe/Berlin", uncertain: dead_letter')
    clock = Clock(datetime(2026, 11, 22, 23, 30, tzinfo=UTC).timestamp())
    one = dispatcher(store, slack(fake, store, opened), watch, clock)
    await one.start()
    lost = alert(1, severity="high")
    await queue(store, [lost])
    # A dispatcher began sending it just before quiet hours, then died.
    delivery = delivery_id("slack", lost.to_dict())
    assert (await store.begin_send(delivery, "dead-one", 0.001)).state == "go"
    await asyncio.sleep(0.01)
    await one.step("one")
    assert await store.held_count() == 0
    [(_, letter)] = await store.dead_letters()
    assert letter["reason"] == ORPHANED
