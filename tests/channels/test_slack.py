"""SlackChannel against a local fake Slack (tests/channels/slack_server.py) on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import socket
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from monitor.channels.slack import SlackChannel
from monitor.channels.slack_blocks import (
    FALLBACK_LIMIT,
    MAX_BLOCKS,
    MESSAGE_LIMIT,
    SECTION_LIMIT,
    build_message,
    escape_mrkdwn,
    link_target,
)
from monitor.errors import ConfigError, DeliveryError, StoreError
from monitor.models import Alert, Item, Match, Severity
from tests.channels.slack_server import WEBHOOK_PATH, FakeSlack, Reply, text_size
from tests.factories import make_alert as factory_alert

TOKEN = "xoxb-1111-2222-SeCrEtToKeN"
CHANNEL = "C0123456"
ENTITY = re.compile(r"&(?:amp|lt|gt);")


class MemoryThreads:
    """The ``Threads`` protocol in a dict (the Redis one is tested with the store)."""

    def __init__(self) -> None:
        self.refs: dict[tuple[str, str], str] = {}

    async def get_thread(self, channel: str, story: str) -> str | None:
        return self.refs.get((channel, story))

    async def set_thread(self, channel: str, story: str, ref: str) -> None:
        self.refs[(channel, story)] = ref


def make_alert(
    *,
    title: str = "Floods in Valencia kill three",
    text: str = "Heavy rain flooded Valencia on Tuesday. Officials in Valencia said three died.",
    url: str | None = "https://news.example/valencia-floods?id=1&lang=en",
    rule: str = "spain-floods",
    story: str = "story-1",
    item_id: str = "item-1",
    severity: Severity = "high",
    followup: bool = False,
    sources: int = 1,
    term: str = "valencia",
) -> Alert:
    """An alert whose matches are every occurrence of ``term`` in the title and text."""
    matches = tuple(
        Match(name, term, m.start(), m.end())
        for name, value in (("title", title), ("text", text))
        for m in re.finditer(re.escape(term), value, re.IGNORECASE)
    )
    item = Item(
        id=item_id,
        source="efe",
        title=title,
        text=text,
        url=url,
        published=datetime(2024, 10, 29, 18, 5, tzinfo=UTC),
    )
    return factory_alert(
        f"{rule}-{story}",
        item=item,
        rule=rule,
        rule_name="Spain floods",
        severity=severity,
        story=story,
        matches=matches,
        channels=("newsroom",),
        followup=followup,
        sources=sources,
    )


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack-sdk routes through HTTP(S)_PROXY from the environment; the fake is local."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=TOKEN) as server:
        yield server
    assert server.errors == []


@pytest.fixture
def threads() -> MemoryThreads:
    return MemoryThreads()


def bot_channel(fake: FakeSlack, threads: MemoryThreads, **options: Any) -> SlackChannel:
    return SlackChannel(
        "newsroom-threads",
        webhook_url=None,
        token=TOKEN,
        channel=CHANNEL,
        api_url=fake.api_url,
        threads=threads,
        timeout_s=5.0,
        **options,
    )


@pytest.fixture
async def bot(fake: FakeSlack, threads: MemoryThreads) -> AsyncIterator[SlackChannel]:
    channel = bot_channel(fake, threads)
    yield channel
    await channel.close()


@pytest.fixture
async def hook(fake: FakeSlack, threads: MemoryThreads) -> AsyncIterator[SlackChannel]:
    channel = SlackChannel(
        "newsroom",
        webhook_url=fake.webhook_url,
        token=None,
        channel=None,
        threads=threads,
        timeout_s=5.0,
    )
    yield channel
    await channel.close()


@pytest.fixture(params=["bot", "webhook"])
def slack(request: pytest.FixtureRequest) -> SlackChannel:
    """Each transport in turn."""
    channel: SlackChannel = request.getfixturevalue("bot" if request.param == "bot" else "hook")
    return channel


def text_objects(payload: dict[str, Any]) -> list[str]:
    """The mrkdwn of every section and context element of a message."""
    out: list[str] = []
    for block in payload["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(element["text"] for element in block.get("elements", []))
    return out


def assert_valid(payload: dict[str, Any]) -> None:
    """Valid Block Kit within Slack's limits, with no entity cut in half."""
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= MAX_BLOCKS
    for data in blocks:
        block = Block.parse(data)
        assert block is not None
        block.validate_json()
    texts = text_objects(payload)
    for text in texts:
        assert len(text) <= SECTION_LIMIT
        assert len(text.encode("utf-16-le")) // 2 <= SECTION_LIMIT
    assert payload["text"] and len(payload["text"]) <= FALLBACK_LIMIT
    assert text_size(payload) <= MESSAGE_LIMIT
    for text in [*texts, payload["text"]]:
        assert "&" not in ENTITY.sub("", text), text
        assert "<!channel>" not in text


def chain(error: BaseException) -> str:
    """An error with its causes, as a traceback would print it."""
    return "".join(traceback.format_exception(error))


# --- payload ------------------------------------------------------------------------------------


async def test_payload_is_valid_block_kit(
    slack: SlackChannel, fake: FakeSlack, threads: MemoryThreads
) -> None:
    await slack.send(make_alert(sources=3))
    (payload,) = fake.payloads()
    assert_valid(payload)
    blocks = payload["blocks"]
    assert blocks[0]["block_id"] == "alert-spain-floods-story-1"
    head, meta, snippet, ids = text_objects(payload)
    assert head.startswith(":large_orange_circle: <https://news.example/valencia-floods?id=1&amp;")
    assert "|Floods in *Valencia* kill three>" in head
    assert head.endswith("\n*High* · Spain floods")
    assert meta.startswith("efe · <!date^1730225100^")
    assert meta.endswith(" · also carried by 3 sources")
    assert snippet == (
        ">Heavy rain flooded *Valencia* on Tuesday. Officials in *Valencia* said three died."
    )
    assert ids == "story `story-1` · alert `spain-floods-story-1`"
    assert payload["text"] == "[high] Spain floods: Floods in Valencia kill three (efe)"
    assert all(block.get("text", {}).get("verbatim", True) for block in blocks)
    assert payload["unfurl_links"] is False
    assert fake.delivered == {"spain-floods-story-1": 1}


async def test_bot_message_carries_channel_and_metadata(bot: SlackChannel, fake: FakeSlack) -> None:
    await bot.send(make_alert())
    (received,) = fake.received
    assert received.path == "/api/chat.postMessage"
    assert received.headers["Authorization"] == f"Bearer {TOKEN}"
    assert received.payload["channel"] == CHANNEL
    assert received.payload["metadata"] == {
        "event_type": "newsmonitor_alert",
        "event_payload": {
            "alert_id": "spain-floods-story-1",
            "story": "story-1",
            "item_id": "item-1",
            "followup": False,
        },
    }


async def test_one_source_says_nothing_about_others(hook: SlackChannel, fake: FakeSlack) -> None:
    await hook.send(make_alert(sources=1, url=None))
    (payload,) = fake.payloads()
    head, meta, *_ = text_objects(payload)
    assert "carried by" not in meta
    assert head.startswith(":large_orange_circle: Floods in *Valencia*")


@pytest.mark.parametrize(
    "title",
    [
        "Valencia " + "&" * 5000,
        ("Valencia & <b>" * 400)[:5000],
        "😀" * 4999 + "Valencia",
        "x" * 597 + "&" * 4403,
        "x" * 598 + "*Valencia*" * 440,
    ],
    ids=["ampersands", "markup", "astral", "entity-at-cut", "bold-at-cut"],
)
async def test_huge_article_stays_within_limits(
    slack: SlackChannel, fake: FakeSlack, title: str
) -> None:
    sentence = "Rain & wind hit <Valencia> *again*; Valencia_s ~mayor~ spoke of `Valencia`. "
    text = (sentence * (100_000 // len(sentence) + 1))[:100_000]
    alert = make_alert(title=title, text=text, url="https://n.example/" + "a" * 5000)
    assert len(alert.matches) > 3000
    await slack.send(alert)
    (payload,) = fake.payloads()
    assert_valid(payload)
    assert len(payload["blocks"]) <= 6
    head = text_objects(payload)[0]
    assert "https://n.example" not in head  # a URL beyond any sensible length is not linked
    for text in text_objects(payload):
        assert text.count("*") % 2 == 0, text  # every bold we open is closed
    assert fake.delivered == {alert.id: 1}


@pytest.mark.parametrize("cut", range(590, 606))
def test_title_cut_never_splits_an_entity(cut: int) -> None:
    alert = make_alert(title="y" * cut + "<&>" * 100, url=None)
    head = build_message(alert).block_dicts()[0]["text"]["text"]
    title = head.split(" ", 1)[1].split("\n", 1)[0]
    assert title.endswith("…")
    assert "&" not in ENTITY.sub("", title)
    assert len(title) <= 600


async def test_headline_cannot_ping_or_forge_links(slack: SlackChannel, fake: FakeSlack) -> None:
    title = "Alert <!channel> see <http://x|y> & <@U123> *bold* _it_ ~gone~ `code` @here"
    alert = make_alert(title=title, url="https://evil.example/a|b>c<d", term="zzz")
    await slack.send(alert)
    (received,) = fake.received
    for forbidden in (b"<!channel>", b"<http://x|y>", b"<@U123>", b"a|b", b"b>c"):
        assert forbidden not in received.raw
    assert b"&lt;!channel&gt;" in received.raw
    assert b"&lt;http://x|y&gt;" in received.raw
    payload = json.loads(received.raw)
    assert_valid(payload)
    head = text_objects(payload)[0]
    assert head.startswith(":large_orange_circle: <https://evil.example/a%7Cb%3Ec%3Cd|Alert ")
    assert "∗bold∗ ˍitˍ ∼gone∼ ˋcodeˋ" in head
    assert "<!channel>" not in payload["text"]
    assert all(
        block["text"]["verbatim"] for block in payload["blocks"] if "text" in block
    )  # a literal @here is not turned into a mention


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<http://x|y>", "&lt;http://x|y&gt;"),
        ("&amp;", "&amp;amp;"),
        ("*b* _i_ ~s~ `c`", "∗b∗ ˍiˍ ∼s∼ ˋcˋ"),
        ("plain 😀 text", "plain 😀 text"),
    ],
)
def test_escape_mrkdwn(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://x.example/a?b=1&c=2", "https://x.example/a?b=1&amp;c=2"),
        ("https://x.example/a|b>c", "https://x.example/a%7Cb%3Ec"),
        (" http://x.example/a b ", "http://x.example/a%20b"),
        ("javascript:alert(1)", None),
        ("ftp://x.example/file", None),
        ("/relative/path", None),
        ("", None),
        (None, None),
    ],
)
def test_link_target(url: str | None, target: str | None) -> None:
    assert link_target(url) == target


# --- threads ------------------------------------------------------------------------------------


async def test_follow_up_replies_in_the_stored_thread(
    bot: SlackChannel, fake: FakeSlack, threads: MemoryThreads
) -> None:
    await bot.send(make_alert())
    first = fake.payloads()[0]
    assert "thread_ts" not in first
    ts = threads.refs[("newsroom-threads", "story-1")]
    assert ts
    await bot.send(make_alert(followup=True, item_id="item-2", title="Valencia toll rises"))
    reply = fake.payloads()[1]
    assert reply["thread_ts"] == ts
    assert_valid(reply)
    assert "↳ update" in text_objects(reply)[0]
    assert reply["text"].startswith("↳ Update Spain floods: Valencia toll rises")
    assert threads.refs == {("newsroom-threads", "story-1"): ts}


async def test_follow_up_without_thread_opens_one(
    bot: SlackChannel, fake: FakeSlack, threads: MemoryThreads
) -> None:
    await bot.send(make_alert(followup=True))
    await bot.send(make_alert(followup=True, item_id="item-3"))
    first, second = fake.payloads()
    assert "thread_ts" not in first
    assert second["thread_ts"] == threads.refs[("newsroom-threads", "story-1")]


async def test_first_alert_of_another_rule_keeps_the_thread(
    bot: SlackChannel, fake: FakeSlack, threads: MemoryThreads
) -> None:
    await bot.send(make_alert())
    ts = threads.refs[("newsroom-threads", "story-1")]
    await bot.send(make_alert(rule="spain-weather"))
    assert "thread_ts" not in fake.payloads()[1]
    assert threads.refs[("newsroom-threads", "story-1")] == ts


async def test_webhook_follow_up_is_a_compact_update(
    hook: SlackChannel, fake: FakeSlack, threads: MemoryThreads
) -> None:
    await hook.send(make_alert(followup=True))
    (payload,) = fake.payloads()
    assert_valid(payload)
    (block,) = payload["blocks"]
    assert block["block_id"] == "alert-spain-floods-story-1"
    assert block["text"]["text"] == (
        "↳ Update on `story-1`: <https://news.example/valencia-floods?id=1&amp;lang=en|"
        "Floods in *Valencia* kill three> (efe)"
    )
    assert "thread_ts" not in payload
    assert threads.refs == {}


async def test_counts_by_alert_id(slack: SlackChannel, fake: FakeSlack) -> None:
    for number in range(5):
        await slack.send(make_alert(story=f"story-{number}"))
    assert fake.delivered == {f"spain-floods-story-{n}": 1 for n in range(5)}


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "invalid_payload",
        "channel_not_found",
        "channel_is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "not_in_channel",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
    ],
)
async def test_permanent_api_errors(bot: SlackChannel, fake: FakeSlack, code: str) -> None:
    fake.plan(Reply(200, {"ok": False, "error": code}))
    with pytest.raises(DeliveryError) as caught:
        await bot.send(make_alert())
    assert caught.value.retryable is False
    assert code in str(caught.value)
    assert "newsroom-threads" in str(caught.value)
    assert TOKEN not in chain(caught.value)
    assert fake.delivered == {}


async def test_wrong_token_is_refused_for_good(fake: FakeSlack, threads: MemoryThreads) -> None:
    channel = SlackChannel(
        "bad",
        webhook_url=None,
        token="xoxb-wrong-token-value",
        channel=CHANNEL,
        api_url=fake.api_url,
        threads=threads,
    )
    try:
        with pytest.raises(DeliveryError, match="invalid_auth") as caught:
            await channel.send(make_alert())
    finally:
        await channel.close()
    assert caught.value.retryable is False
    assert "xoxb-wrong-token-value" not in chain(caught.value)
    assert threads.refs == {}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (400, "invalid_blocks"),
        (403, "action_prohibited"),
        (404, "no_service"),
        (410, "channel_is_archived"),
    ],
)
async def test_permanent_webhook_errors(
    hook: SlackChannel, fake: FakeSlack, status: int, body: str
) -> None:
    fake.plan(Reply(status, text=body))
    with pytest.raises(DeliveryError) as caught:
        await hook.send(make_alert())
    assert caught.value.retryable is False
    assert f"HTTP {status} {body}" in str(caught.value)
    assert WEBHOOK_PATH not in chain(caught.value)


async def test_rate_limit_carries_retry_after(slack: SlackChannel, fake: FakeSlack) -> None:
    fake.plan(
        Reply(429, {"ok": False, "error": "ratelimited"}, "rate_limited", {"Retry-After": "2"})
    )
    with pytest.raises(DeliveryError) as caught:
        await slack.send(make_alert())
    assert caught.value.retryable is True
    assert caught.value.retry_after_s == 2
    assert "retry after 2s" in str(caught.value)
    await slack.send(make_alert())  # the channel itself never retried: this is the second POST
    assert len(fake.received) == 2
    assert fake.delivered == {"spain-floods-story-1": 1}


_SERVER_TROUBLE = [
    Reply(500, {"ok": False, "error": "internal_error"}, "internal_error"),
    Reply(503, text="<html>upstream down</html>", headers={"Content-Type": "text/html"}),
    Reply(502, text="bad gateway"),
]


@pytest.mark.parametrize(
    "reply",
    [*_SERVER_TROUBLE, Reply(200, {"ok": False, "error": "service_unavailable"})],
    ids=["500-json", "503-html", "502-text", "200-transient-code"],
)
async def test_transient_api_errors(bot: SlackChannel, fake: FakeSlack, reply: Reply) -> None:
    fake.plan(reply)
    with pytest.raises(DeliveryError) as caught:
        await bot.send(make_alert())
    assert caught.value.retryable is True
    assert caught.value.retry_after_s is None
    assert TOKEN not in chain(caught.value)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, text="ok"),
        Reply(200, text="<html>portal</html>", headers={"Content-Type": "text/html"}),
        Reply(200, {"ok": False}),
        Reply(200, {"ok": False, "error": "some_new_error"}),
    ],
    ids=["text", "html", "no-code", "unknown-code"],
)
async def test_unexpected_api_answers_are_permanent(
    bot: SlackChannel, fake: FakeSlack, reply: Reply
) -> None:
    fake.plan(reply)
    with pytest.raises(DeliveryError, match=r"chat\.postMessage failed") as caught:
        await bot.send(make_alert())
    assert caught.value.retryable is False


async def test_answer_without_ts_opens_no_thread(
    bot: SlackChannel, fake: FakeSlack, threads: MemoryThreads
) -> None:
    fake.plan(Reply(200, {"ok": True}))
    await bot.send(make_alert())
    assert threads.refs == {}


@pytest.mark.parametrize("reply", _SERVER_TROUBLE, ids=["500", "503-html", "502-text"])
async def test_transient_webhook_errors(hook: SlackChannel, fake: FakeSlack, reply: Reply) -> None:
    fake.plan(reply)
    with pytest.raises(DeliveryError, match=f"HTTP {reply.status}") as caught:
        await hook.send(make_alert())
    assert caught.value.retryable is True
    assert WEBHOOK_PATH not in chain(caught.value)


async def test_timeout_is_transient(fake: FakeSlack, threads: MemoryThreads) -> None:
    channel = SlackChannel(
        "slow",
        webhook_url=None,
        token=TOKEN,
        channel=CHANNEL,
        api_url=fake.api_url,
        threads=threads,
        timeout_s=0.2,
    )
    fake.plan(Reply(delay_s=1.0))
    try:
        with pytest.raises(DeliveryError, match=r"no answer within 0\.2s") as caught:
            await channel.send(make_alert())
    finally:
        await channel.close()
    assert caught.value.retryable is True
    assert TOKEN not in chain(caught.value)


@pytest.mark.parametrize("transport", ["bot", "webhook"])
async def test_connection_refused_is_transient(transport: str, threads: MemoryThreads) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    base = f"http://127.0.0.1:{port}"
    channel = SlackChannel(
        "down",
        webhook_url=base + WEBHOOK_PATH if transport == "webhook" else None,
        token=TOKEN if transport == "bot" else None,
        channel=CHANNEL if transport == "bot" else None,
        api_url=base + "/api/",
        threads=threads,
    )
    try:
        with pytest.raises(DeliveryError, match="request failed") as caught:
            await channel.send(make_alert())
    finally:
        await channel.close()
    assert caught.value.retryable is True
    assert TOKEN not in chain(caught.value)
    assert WEBHOOK_PATH not in chain(caught.value)


async def test_secrets_stay_out_of_logs(
    slack: SlackChannel, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.plan(Reply(500, {"ok": False, "error": "internal_error"}, "internal_error"))
    with pytest.raises(DeliveryError):
        await slack.send(make_alert())
    await slack.send(make_alert())
    assert caplog.records  # our own debug line was written
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert WEBHOOK_PATH not in record.getMessage()


# --- configuration and lifecycle ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("webhook_url", "token", "channel", "message"),
    [
        (None, None, None, "either webhook_url or token and channel"),
        ("https://hooks.slack.com/services/x", TOKEN, CHANNEL, "either webhook_url or token"),
        (None, TOKEN, None, "needs both token and channel"),
        (None, None, CHANNEL, "needs both token and channel"),
        (None, "  ", CHANNEL, "needs both token and channel"),
        ("hooks.slack.com/services/" + TOKEN, None, None, "webhook_url must be an http://"),
    ],
)
def test_configuration_is_checked(
    webhook_url: str | None, token: str | None, channel: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SlackChannel(
            "newsroom",
            webhook_url=webhook_url,
            token=token,
            channel=channel,
            threads=MemoryThreads(),
        )
    assert message in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_dispatcher_facts() -> None:
    assert SlackChannel.rate_per_s == 1.0
    assert SlackChannel.burst == 3


async def test_close_is_idempotent_and_send_reopens(bot: SlackChannel, fake: FakeSlack) -> None:
    await bot.close()
    await bot.close()
    await bot.send(make_alert())
    await bot.close()
    assert len(fake.delivered) == 1


def test_api_url_is_checked() -> None:
    with pytest.raises(ConfigError, match="api_url must be an http://"):
        SlackChannel(
            "newsroom",
            webhook_url=None,
            token=TOKEN,
            channel=CHANNEL,
            api_url="slack.com/api",
            threads=MemoryThreads(),
        )


class BrokenThreads(MemoryThreads):
    """Threads whose store is down for reading or for writing."""

    def __init__(self, *, read: bool, write: bool) -> None:
        super().__init__()
        self.read, self.write = read, write

    async def get_thread(self, channel: str, story: str) -> str | None:
        if not self.read:
            raise StoreError("redis down")
        return await super().get_thread(channel, story)

    async def set_thread(self, channel: str, story: str, ref: str) -> None:
        if not self.write:
            raise StoreError("redis down")
        await super().set_thread(channel, story, ref)


@pytest.mark.parametrize(("read", "write"), [(False, True), (True, False)])
async def test_thread_store_failures(fake: FakeSlack, read: bool, write: bool) -> None:
    threads = BrokenThreads(read=read, write=write)
    channel = SlackChannel(
        "newsroom-threads",
        webhook_url=None,
        token=TOKEN,
        channel=CHANNEL,
        api_url=fake.api_url,
        threads=threads,
    )
    try:
        if not read:  # nothing sent yet: the dispatcher may simply try again
            with pytest.raises(DeliveryError, match="thread") as caught:
                await channel.send(make_alert())
            assert caught.value.retryable is True
            assert fake.received == []
        else:  # sent already: failing now would post it twice, so only the thread is lost
            await channel.send(make_alert())
            assert fake.delivered == {"spain-floods-story-1": 1}
            assert threads.refs == {}
    finally:
        await channel.close()


async def test_a_bot_with_a_signing_secret_puts_buttons_under_its_alerts(
    fake: FakeSlack, threads: MemoryThreads
) -> None:
    channel = bot_channel(fake, threads, buttons=True)
    try:
        await channel.send(factory_alert(story="s-floods", rule="floods"))
    finally:
        await channel.close()
    [message] = fake.messages
    actions = message["blocks"][-1]
    assert actions["type"] == "actions"
    assert [e["action_id"] for e in actions["elements"]] == [
        "newsmonitor_mute",
        "newsmonitor_snooze",
        "newsmonitor_not_relevant",
    ]
