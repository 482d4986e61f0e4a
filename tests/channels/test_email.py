"""EmailChannel against a real SMTP server (aiosmtpd) on 127.0.0.1, and its message builder."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from monitor.channels.email import (
    SUBJECT_MAX,
    EmailChannel,
    build_message,
    html_body,
    message_id,
    subject,
    thread_id,
)
from monitor.errors import ConfigError, DeliveryError
from monitor.models import Alert, Item, Match
from tests.channels.smtp_server import Certificate, Server, self_signed_cert, smtp_server
from tests.channels.test_slack import MemoryThreads
from tests.factories import make_alert as factory_alert

PASSWORD = "s3cret-Pa55word!"
SENDER = "newsmonitor@example.org"
DESK = "desk@example.org"
NIGHT = "night@example.org"

TITLE = "Flood <script>alert(1)</script> hits Bonn & Cologne"
TEXT = (
    "Heavy rain caused a flood along the Rhine on Monday. Officials in Bonn said the water "
    "level would peak overnight; schools stay closed & roads are shut."
)


def span(text: str, word: str, field: str = "text") -> Match:
    start = text.index(word)
    return Match(field, word.lower(), start, start + len(word))


def make_alert(**changes: Any) -> Alert:
    item = Item(
        id="item-1",
        source="dpa",
        title=TITLE,
        text=TEXT,
        url="https://news.example.org/flood?a=1&b=2",
        published=datetime(2024, 5, 6, 7, 30, tzinfo=UTC),
    )
    fields: dict[str, Any] = {
        "item": item,
        "rule": "floods",
        "rule_name": "Floods in NRW",
        "story": "story-42",
        "matches": (span(TITLE, "Flood", "title"), span(TEXT, "flood"), span(TEXT, "Bonn")),
        "channels": ("desk-mail",),
        "sources": 3,
    }
    fields.update(changes)
    return factory_alert(fields.pop("id", "3f2a9c0d41b7e6a85c12"), **fields)


def followup_alert(first: Alert, item_id: str = "item-2") -> Alert:
    title = "Flood water recedes in Bonn"
    item = Item(id=item_id, source="reuters", title=title, text="The flood is over.", url=None)
    return make_alert(item=item, followup=True, sources=4, matches=(span(title, "Flood", "title"),))


def channel(server: Server, **changes: Any) -> EmailChannel:
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "sender": SENDER,
        "to": [DESK],
        "timeout_s": 5.0,
    }
    options.update(changes)
    return EmailChannel("desk-mail", **options)


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert isinstance(plain, EmailMessage) and isinstance(rich, EmailMessage)
    return plain.get_content(), rich.get_content()


def subject_of(message: EmailMessage) -> str:
    """The Subject as a mail client shows it. The stdlib folds a 70–77 character subject onto a
    continuation line (legal), and its parser then keeps the folding space; clients drop it."""
    return str(message["Subject"]).strip()


def shown(error: BaseException) -> str:
    """Everything a log of this error could show: message, repr and the chained traceback."""
    return f"{error} {error!r} {''.join(traceback.format_exception(error))}"


@pytest.fixture
def server() -> Iterator[Server]:
    with smtp_server() as running:
        yield running


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    made = self_signed_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("openssl is not installed: no certificate for the TLS tests")
    return made


# --- what arrives -------------------------------------------------------------------------------


async def test_message_arrives_with_headers_and_both_parts(server: Server) -> None:
    alert = make_alert()
    await channel(server, to=[DESK, NIGHT]).send(alert)

    [got] = server.handler.received
    assert got.sender == SENDER and got.recipients == [DESK, NIGHT]
    message = got.message()
    assert message["From"] == SENDER
    assert message["To"] == f"{DESK}, {NIGHT}"
    assert subject_of(message) == f"[high] Floods in NRW: {TITLE}"
    assert message["Message-ID"] == "<3f2a9c0d41b7e6a85c12@newsmonitor>"
    assert message["In-Reply-To"] is None and message["References"] is None
    assert message["Date"].datetime.tzinfo is not None
    assert abs((datetime.now(UTC) - message["Date"].datetime).total_seconds()) < 60
    assert message["X-Newsmonitor-Alert"] == alert.id
    assert message["X-Newsmonitor-Story"] == "story-42"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]

    plain, rich = parts(message)
    assert TITLE in plain and "also carried by 3 sources" in plain
    assert "https://news.example.org/flood?a=1&b=2" in plain
    assert "Matched: flood, bonn" in plain
    assert "<script>" not in rich
    assert (
        "<mark>Flood</mark> &lt;script&gt;alert(1)&lt;/script&gt; hits Bonn &amp; Cologne" in rich
    )
    assert "caused a <mark>flood</mark> along" in rich and "in <mark>Bonn</mark> said" in rich
    assert "closed &amp; roads" in rich
    assert 'href="https://news.example.org/flood?a=1&amp;b=2"' in rich
    assert "also carried by 3 sources" in rich


async def test_followups_thread_under_the_first_alert(server: Server) -> None:
    mail = channel(server)
    first = make_alert()
    follow = followup_alert(first)
    await mail.send(first)
    await mail.send(follow)
    await mail.send(follow)  # a redelivery keeps its id, so clients can drop the copy

    opening, reply, again = (r.message() for r in server.handler.received)
    assert reply["In-Reply-To"] == opening["Message-ID"] == thread_id(first)
    assert reply["References"] == opening["Message-ID"]
    assert reply["Message-ID"] not in (opening["Message-ID"], None)
    assert reply["Message-ID"] == again["Message-ID"] == message_id(follow)
    assert subject_of(reply) == "Re: [high] Floods in NRW: Flood water recedes in Bonn"
    assert reply["X-Newsmonitor-Story"] == opening["X-Newsmonitor-Story"]
    assert message_id(followup_alert(first, "item-3")) != message_id(follow)
    _, rich = parts(reply)
    assert "<mark>Flood</mark> water recedes" in rich and "also carried by 4 sources" in rich


async def test_followups_keep_the_first_alerts_subject(server: Server) -> None:
    """Clients that thread by subject (and people reading a list) see one conversation."""
    mail = channel(server, threads=MemoryThreads())
    first = make_alert()
    await mail.send(first)
    await mail.send(followup_alert(first))
    await mail.send(followup_alert(first, "item-3"))
    opening, *replies = (r.message() for r in server.handler.received)
    assert subject_of(opening) == f"[high] Floods in NRW: {TITLE}"
    assert [subject_of(reply) for reply in replies] == [f"Re: {subject_of(opening)}"] * 2
    # A story whose first alert this channel never sent: the follow-up's own title.
    other = replace(followup_alert(first), story="story-7")
    await mail.send(other)
    assert subject_of(server.handler.received[-1].message()).startswith("Re: [high] Floods")
    assert "Flood water recedes" in subject_of(server.handler.received[-1].message())


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply", ["421 4.3.2 Service shutting down", "451 4.3.0 Local error, try again"]
)
async def test_temporary_failure_is_retryable_then_delivered(server: Server, reply: str) -> None:
    mail = channel(server)
    server.handler.fail_data(reply)
    with pytest.raises(DeliveryError) as caught:
        await mail.send(make_alert())
    assert caught.value.retryable is True
    assert reply.split()[0] in str(caught.value)
    assert server.handler.received == []

    await mail.send(make_alert())
    assert len(server.handler.received) == 1


async def test_one_recipient_refused_the_other_still_receives(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.handler.refuse(NIGHT, "550 5.1.1 No such user here")
    with caplog.at_level(logging.WARNING, logger="monitor.channels.email"):
        await channel(server, to=[NIGHT, DESK]).send(make_alert())

    [got] = server.handler.received
    assert got.recipients == [DESK]
    assert got.message()["To"] == f"{NIGHT}, {DESK}"
    assert f"{NIGHT}: 550 5.1.1 No such user here" in caplog.text


async def test_all_recipients_refused_is_permanent_with_the_reason(server: Server) -> None:
    server.handler.refuse(DESK, "550 5.1.1 No such user here")
    server.handler.refuse(NIGHT, "553 5.1.3 Bad destination mailbox")
    with pytest.raises(DeliveryError) as caught:
        await channel(server, to=[DESK, NIGHT]).send(make_alert())
    assert caught.value.retryable is False
    assert f"{DESK}: 550 5.1.1 No such user here" in str(caught.value)
    assert f"{NIGHT}: 553 5.1.3 Bad destination mailbox" in str(caught.value)
    assert server.handler.received == []


async def test_greylisted_recipient_is_retried_alone(server: Server) -> None:
    mail = channel(server, to=[DESK, NIGHT])
    server.handler.refuse(NIGHT, "451 4.7.1 Greylisted, come back later", times=1)
    with pytest.raises(DeliveryError) as caught:
        await mail.send(make_alert())
    assert caught.value.retryable is True and "451 4.7.1" in str(caught.value)

    await mail.send(make_alert())
    assert [r.recipients for r in server.handler.received] == [[DESK], [NIGHT]]


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mail = EmailChannel("m", host="127.0.0.1", port=port, tls="none", sender=SENDER, to=[DESK])
    with pytest.raises(DeliveryError) as caught:
        await mail.send(make_alert())
    assert caught.value.retryable is True


async def test_silent_server_times_out_retryably() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog; no greeting ever comes
        port = silent.getsockname()[1]
        mail = EmailChannel(
            "m", host="127.0.0.1", port=port, tls="none", sender=SENDER, to=[DESK], timeout_s=0.3
        )
        with pytest.raises(DeliveryError) as caught:
            await mail.send(make_alert())
    assert caught.value.retryable is True and "timed out" in str(caught.value).lower()


async def test_starttls_missing_is_permanent(server: Server) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel(server, tls="starttls").send(make_alert())
    assert caught.value.retryable is False and "STARTTLS" in str(caught.value)
    assert server.handler.received == []


# --- TLS and login ------------------------------------------------------------------------------


async def test_starttls_with_login(certificate: Certificate) -> None:
    users = {"mailer": PASSWORD}
    with smtp_server(users=users, tls_context=certificate.server_context()) as server:
        mail = channel(
            server,
            tls="starttls",
            username="mailer",
            password=PASSWORD,
            tls_context=certificate.client_context(),
        )
        await mail.send(make_alert())
    [got] = server.handler.received
    assert got.tls is True and got.login == "mailer"
    assert subject_of(got.message()).startswith("[high] Floods in NRW")


async def test_implicit_tls(certificate: Certificate) -> None:
    with smtp_server(tls_context=certificate.server_context(), implicit_tls=True) as server:
        mail = channel(server, tls="tls", tls_context=certificate.client_context())
        await mail.send(make_alert())
    [got] = server.handler.received
    assert got.tls is True


async def test_untrusted_certificate_is_permanent(certificate: Certificate) -> None:
    with (
        smtp_server(tls_context=certificate.server_context()) as server,
        pytest.raises(DeliveryError) as caught,
    ):
        await channel(server, tls="starttls").send(make_alert())
    assert caught.value.retryable is False and "certificate" in str(caught.value)
    assert server.handler.received == []


@pytest.mark.parametrize(
    "auth_reply",
    [None, f"535 5.7.8 Bad credentials: {PASSWORD}"],
    ids=["plain-535", "server-echoes-password"],
)
async def test_login_refused_is_permanent_and_never_shows_the_password(
    certificate: Certificate, caplog: pytest.LogCaptureFixture, auth_reply: str | None
) -> None:
    with smtp_server(users={"mailer": "another"}, tls_context=certificate.server_context()) as srv:
        srv.handler.auth_reply = auth_reply
        mail = channel(
            srv,
            tls="starttls",
            username="mailer",
            password=PASSWORD,
            tls_context=certificate.client_context(),
        )
        with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
            await mail.send(make_alert())
    error = caught.value
    assert error.retryable is False
    assert "login refused: SMTP 535" in str(error)
    assert PASSWORD not in shown(error)
    ours = [r for r in caplog.records if r.name.startswith(("monitor", "aiosmtplib"))]
    assert all(PASSWORD not in r.getMessage() for r in ours)
    assert PASSWORD not in repr(mail)
    assert srv.handler.received == []


# --- the message, without a server --------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, f"[high] Floods in NRW: {TITLE}"),
        ({"followup": True}, f"Re: [high] Floods in NRW: {TITLE}"),
        (
            {"rule_name": "Floods\r\nBcc: victim@example.org", "severity": "critical"},
            f"[critical] Floods Bcc: victim@example.org: {TITLE}",
        ),
        (
            {"title": "Line one\nline\ttwo\u2028three\u200b!"},
            "[high] Floods in NRW: Line one line two three!",
        ),
        ({"title": ""}, "[high] Floods in NRW: https://news.example.org/flood?a=1&b=2"),
    ],
)
def test_subject(changes: dict[str, Any], expected: str) -> None:
    title = changes.pop("title", None)
    alert = make_alert(**changes)
    if title is not None:
        alert = make_alert(item=Item(id="i", source="s", title=title, text="", url=alert.item.url))
    assert subject(alert) == expected


def test_long_subject_is_cut_at_a_word() -> None:
    title = "Parliament " + "debates the budget again " * 20
    text = subject(make_alert(item=Item(id="i", source="s", title=title, text="")))
    assert len(text) <= SUBJECT_MAX and text.endswith("…")
    assert text[:-1].split()[-1] in {"debates", "the", "budget", "again"}


def test_message_is_built_without_a_server() -> None:
    date = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    message = build_message(make_alert(), sender=SENDER, to=[DESK], date=date)
    assert message["Date"] == "Mon, 06 May 2024 08:00:00 +0000"
    assert message["Message-ID"] == message_id(make_alert())


def test_message_id_of_an_odd_alert_id_is_still_valid() -> None:
    odd = make_alert(id="rule one/story <2>")
    assert message_id(odd).endswith("@newsmonitor>")
    assert " " not in message_id(odd) and message_id(odd).count("<") == 1


def test_only_web_links_become_links() -> None:
    item = Item(id="i", source="s", title="T", text="", url="javascript:alert(1)")
    rich = html_body(make_alert(item=item, matches=()))
    assert "href" not in rich and "javascript:alert(1)" in rich


def test_overlapping_matches_make_one_mark() -> None:
    text = "New York City council"
    matches = (Match("text", "new york", 0, 8), Match("text", "york city", 4, 13))
    rich = html_body(
        make_alert(item=Item(id="i", source="s", title="T", text=text), matches=matches)
    )
    assert "<mark>New York City</mark> council" in rich


def test_ports_default_by_tls_mode() -> None:
    def port(tls: Any) -> int:
        return EmailChannel("m", host="h", tls=tls, sender=SENDER, to=[DESK]).port

    assert (port("starttls"), port("tls"), port("none")) == (587, 465, 25)
    assert EmailChannel.rate_per_s is None and EmailChannel.burst == 1


@pytest.mark.parametrize(
    "changes",
    [{"tls": "ssl"}, {"to": []}, {"password": PASSWORD}],
    ids=["unknown-tls", "no-recipients", "password-without-user"],
)
def test_bad_configuration_fails_loudly(changes: dict[str, Any]) -> None:
    options: dict[str, Any] = {"host": "h", "sender": SENDER, "to": [DESK], **changes}
    with pytest.raises(ConfigError) as caught:
        EmailChannel("m", **options)
    assert PASSWORD not in str(caught.value)
