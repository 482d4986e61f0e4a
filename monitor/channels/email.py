"""Alerts by email: one multipart/alternative message per alert over SMTP (aiosmtplib).

Each story is one thread in mail clients: its first alert's Message-ID is derived from the alert
id, and every follow-up points at it with In-Reply-To and References. Several recipients share
one SMTP transaction; a recipient refused for good does not stop the others.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
import ssl
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import ClassVar, Literal
from urllib.parse import urlsplit

import aiosmtplib

from monitor.channels.base import Threads
from monitor.channels.times import shown
from monitor.core.text import Snippet, highlight_runs, snippets
from monitor.errors import ConfigError, DeliveryError
from monitor.models import Alert, Digest

log = logging.getLogger(__name__)

TlsMode = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
MESSAGE_ID_DOMAIN = "newsmonitor"
SUBJECT_MAX = 160  # characters; long enough for a headline, short enough for a mail list
SEVERITY_COLORS = {"low": "#6b7280", "normal": "#2563eb", "high": "#d97706", "critical": "#dc2626"}

_ATOM = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_QUIT_TIMEOUT_S = 5.0
_PENDING_MAX = 1024  # alerts whose recipients are partly served, remembered for the retry


# --- message ------------------------------------------------------------------------------------


def _local_part(value: str) -> str:
    """``value`` itself when it is a plain dot-atom (alert ids are hex), else a hash of it."""
    if len(value) <= 64 and _ATOM.fullmatch(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def thread_id(alert: Alert) -> str:
    """The Message-ID of a story's first alert, which its follow-ups refer to."""
    return f"<{_local_part(alert.id)}@{MESSAGE_ID_DOMAIN}>"


def message_id(alert: Alert) -> str:
    """This alert's Message-ID: the thread id for a first alert; for a follow-up, one derived
    from the alert and its item, so a redelivered follow-up keeps its id."""
    if not alert.followup:
        return thread_id(alert)
    item = hashlib.sha256(alert.item.id.encode()).hexdigest()[:16]
    return f"<{_local_part(alert.id)}.{item}@{MESSAGE_ID_DOMAIN}>"


def one_line(text: str) -> str:
    """``text`` safe for a header: line breaks and control characters become spaces, invisible
    format characters go, runs of white space collapse."""
    chars = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        chars.append(" " if category[0] in "CZ" else char)
    return " ".join("".join(chars).split())


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary when one is near, with an
    ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def subject(alert: Alert) -> str:
    """``[severity] rule name: title``, ``Re: …`` for a follow-up; one line, at most
    ``SUBJECT_MAX`` characters."""
    title = one_line(alert.item.title) or one_line(alert.item.url or alert.item.id)
    text = f"[{alert.severity}] {one_line(alert.rule_name)}: {title}"
    return truncate(("Re: " if alert.followup else "") + text, SUBJECT_MAX)


def _link(url: str | None) -> str | None:
    """``url`` when it is an http(s) address fit for an ``href``, else None."""
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        return None
    parts = urlsplit(url)
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _marked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` HTML-escaped, with each span (merged where they overlap) in ``<mark>``."""
    return "".join(
        f"<mark>{html.escape(piece)}</mark>" if marked else html.escape(piece)
        for piece, marked in highlight_runs(text, spans)
    )


def _published(alert: Alert) -> str | None:
    published = alert.item.published
    return shown(published) if published is not None else None


def _byline(alert: Alert) -> list[str]:
    """Source, publication time and how many sources carry the story."""
    parts = [alert.item.source]
    if when := _published(alert):
        parts.append(when)
    if alert.sources > 1:
        parts.append(f"also carried by {alert.sources} sources")
    return parts


def _framed(piece: Snippet, body: str) -> str:
    """``body`` (the snippet's text, rendered) with an ellipsis wherever the snippet was cut."""
    return ("…" if piece.cut_before else "") + body + ("…" if piece.cut_after else "")


def _terms(alert: Alert) -> list[str]:
    return list(dict.fromkeys(m.term for m in alert.matches))


def text_body(alert: Alert) -> str:
    """The text/plain part: what a person needs to decide whether to click."""
    item = alert.item
    lead = f"[{alert.severity}] {one_line(alert.rule_name)}"
    lines = [lead + (" (follow-up)" if alert.followup else ""), one_line(item.title) or item.id]
    lines += [" · ".join(one_line(p) for p in _byline(alert)), ""]
    if item.text.strip():
        spans = [(m.start, m.end) for m in alert.matches if m.field == "text"]
        for piece in snippets(item.text, spans):
            lines += [_framed(piece, " ".join(piece.text.split())), ""]
    if terms := _terms(alert):
        lines.append("Matched: " + ", ".join(terms))
    if where := item.url or item.path:
        lines.append(where)
    if alert.related:
        lines.append(
            "May belong to an earlier story: " + one_line(alert.related_title or alert.related)
        )
    lines += ["", "-- ", f"newsmonitor alert {alert.id}, story {alert.story}"]
    return "\n".join(lines) + "\n"


def html_body(alert: Alert) -> str:
    """The text/html part: every piece of feed text escaped, matched terms in ``<mark>``."""
    item = alert.item
    esc = html.escape
    color = SEVERITY_COLORS.get(alert.severity, "#374151")
    link = _link(item.url)
    title_spans = [(m.start, m.end) for m in alert.matches if m.field == "title"]
    title = _marked(item.title, title_spans) if item.title.strip() else esc(item.id)
    if link:
        title = f'<a href="{esc(link)}">{title}</a>'
    followup = " · follow-up" if alert.followup else ""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(subject(alert))}</title></head>",
        '<body style="font-family:sans-serif;line-height:1.45;color:#111827">',
        f'<p style="margin:0;color:{color};font-weight:bold">[{esc(alert.severity)}] '
        f"{esc(one_line(alert.rule_name))}{followup}</p>",
        f'<h2 style="margin:0.25em 0">{title}</h2>',
        f'<p style="margin:0;color:#4b5563">{" · ".join(esc(p) for p in _byline(alert))}</p>',
    ]
    if item.text.strip():
        spans = [(m.start, m.end) for m in alert.matches if m.field == "text"]
        for piece in snippets(item.text, spans):
            body = _framed(piece, _marked(piece.text, piece.highlights))
            parts.append(f'<p style="border-left:3px solid #d1d5db;padding-left:0.75em">{body}</p>')
    if terms := _terms(alert):
        parts.append(f"<p>Matched: {', '.join(f'<mark>{esc(t)}</mark>' for t in terms)}</p>")
    if link:
        parts.append(f'<p><a href="{esc(link)}">Read the article</a></p>')
    elif where := item.url or item.path:
        parts.append(f"<p>{esc(where)}</p>")
    parts += [
        '<p style="margin-top:2em;font-size:small;color:#9ca3af">'
        f"newsmonitor alert {esc(alert.id)}, story {esc(alert.story)}</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _envelope(
    sender: str, to: Sequence[str], title: str, ident: str, date: datetime | None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = title
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = ident
    return message


def build_message(
    alert: Alert,
    *,
    sender: str,
    to: Sequence[str],
    date: datetime | None = None,
    first_subject: str | None = None,
) -> EmailMessage:
    """The whole email for ``alert``: headers, threading, text and HTML parts. ``date`` is when
    it is sent (now by default). A follow-up with ``first_subject`` (the story's first alert's)
    is titled ``Re: `` that subject, so every client threads it under the first alert."""
    title = subject(alert)
    if alert.followup and first_subject:
        title = truncate("Re: " + first_subject.removeprefix("Re: "), SUBJECT_MAX)
    message = _envelope(sender, to, title, message_id(alert), date)
    if alert.followup:
        message["In-Reply-To"] = thread_id(alert)
        message["References"] = thread_id(alert)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Newsmonitor-Alert"] = one_line(alert.id)
    message["X-Newsmonitor-Story"] = one_line(alert.story)
    message.set_content(text_body(alert))
    message.add_alternative(html_body(alert), subtype="html")
    return message


def digest_message_id(digest: Digest) -> str:
    return f"<digest.{_local_part(digest.id)}@{MESSAGE_ID_DOMAIN}>"


def digest_subject(digest: Digest) -> str:
    return truncate(one_line(f"[digest] {digest.summary()}"), SUBJECT_MAX)


def digest_text(digest: Digest) -> str:
    """The text/plain part of a digest: each story, its alerts under it."""
    lines = [digest_subject(digest), ""]
    for story, alerts in digest.stories():
        for n, alert in enumerate(alerts):
            item = alert.item
            title = one_line(item.title) or item.id
            if n == 0:
                lines.append(f"* [{alert.severity}] {title}")
                lines.append(f"  {one_line(alert.rule_name)} · {' · '.join(_byline(alert))}")
            else:
                lines.append(f"  -> {title} ({one_line(item.source)})")
            if where := item.url or item.path:
                lines.append(f"  {where}")
        lines.append(f"  story {story}")
        lines.append("")
    lines += ["-- ", f"newsmonitor digest {digest.id}"]
    return "\n".join(lines) + "\n"


def digest_html(digest: Digest) -> str:
    """The text/html part of a digest: a list per story, feed text escaped."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(digest_subject(digest))}</title></head>",
        '<body style="font-family:sans-serif;line-height:1.45;color:#111827">',
        f'<h2 style="margin:0 0 0.5em">Digest: {esc(digest.summary())}</h2>',
    ]
    for story, alerts in digest.stories():
        first = alerts[0]
        color = SEVERITY_COLORS.get(first.severity, "#374151")
        parts.append(f'<div style="margin:1em 0" data-story="{esc(story)}">')
        parts.append(
            f'<p style="margin:0;color:{color};font-weight:bold">[{esc(first.severity)}] '
            f"{esc(one_line(first.rule_name))}</p>"
        )
        parts.append("<ul>")
        for alert in alerts:
            item = alert.item
            marks = [(m.start, m.end) for m in alert.matches if m.field == "title"]
            title = _marked(item.title, marks) if item.title.strip() else esc(item.id)
            if link := _link(item.url):
                title = f'<a href="{esc(link)}">{title}</a>'
            byline = " · ".join(esc(p) for p in _byline(alert))
            parts.append(f'<li>{title} <span style="color:#4b5563">{byline}</span></li>')
        parts.append("</ul></div>")
    parts += [
        f'<p style="margin-top:2em;font-size:small;color:#9ca3af">newsmonitor digest '
        f"{esc(digest.id)}</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def build_digest(
    digest: Digest, *, sender: str, to: Sequence[str], date: datetime | None = None
) -> EmailMessage:
    """The whole email for ``digest``, with a Message-ID of its own."""
    message = _envelope(sender, to, digest_subject(digest), digest_message_id(digest), date)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Newsmonitor-Digest"] = one_line(digest.id)
    message.set_content(digest_text(digest))
    message.add_alternative(digest_html(digest), subtype="html")
    return message


# --- channel ------------------------------------------------------------------------------------


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def _cert_rejected(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failed certificate check: a setup problem that
    waiting will not fix."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class EmailChannel:
    """Sends each alert as one email to every recipient, over a fresh SMTP connection.

    A recipient refused temporarily (4xx) while others accepted makes the send fail as
    retryable; the retry of the same alert then goes only to the recipients still owed it, so
    nobody gets it twice (remembered in memory, for the last ``_PENDING_MAX`` such alerts).
    """

    rate_per_s: ClassVar[float | None] = None
    burst: ClassVar[int] = 1

    def __init__(
        self,
        id: str,
        *,
        host: str,
        port: int | None = None,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        sender: str,
        to: Sequence[str],
        timeout_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        threads: Threads | None = None,
    ) -> None:
        """``threads`` remembers each story's first subject, which its follow-ups take up."""
        if tls not in DEFAULT_PORTS:
            raise ConfigError(f"channel {id}: tls must be starttls, tls or none, not {tls!r}")
        if not to:
            raise ConfigError(f"channel {id}: no recipients")
        if password is not None and username is None:
            raise ConfigError(f"channel {id}: a password needs a username")
        self._id = id
        self.host = host
        self.port = port if port is not None else DEFAULT_PORTS[tls]
        self.tls: TlsMode = tls
        self.username = username
        self._password = password
        self.sender = sender
        self.to = list(to)
        self.timeout_s = timeout_s
        self.tls_context = tls_context
        self._secrets = self._secret_forms(username, password)
        self.threads = threads
        self._served: OrderedDict[str, frozenset[str]] = OrderedDict()

    def __repr__(self) -> str:
        return f"EmailChannel({self._id!r}, host={self.host!r}, port={self.port}, tls={self.tls!r})"

    @property
    def id(self) -> str:
        return self._id

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise ``DeliveryError`` unless at least the recipients not refused
        for good accepted it."""
        first = None
        if alert.followup and self.threads is not None:
            first = await self.threads.get_thread(self._id, alert.story)
        message = build_message(alert, sender=self.sender, to=self.to, first_subject=first)
        await self._deliver(message, message_id(alert), f"alert {alert.id}")
        if not alert.followup and self.threads is not None:
            await self.threads.set_thread(self._id, alert.story, str(message["Subject"]))

    async def send_digest(self, digest: Digest) -> None:
        """Deliver ``digest`` as one email, on the same terms as ``send``."""
        message = build_digest(digest, sender=self.sender, to=self.to)
        await self._deliver(message, digest_message_id(digest), f"digest {digest.id}")

    async def _deliver(self, message: EmailMessage, key: str, what: str) -> None:
        served = self._served.get(key, frozenset())
        recipients = [r for r in self.to if r not in served]
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            timeout=self.timeout_s,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            tls_context=self.tls_context,
        )
        sent = False
        try:
            await smtp.connect()
            refused, _ = await smtp.send_message(message, sender=self.sender, recipients=recipients)
            sent = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            failed = {e.recipient: (e.code, e.message) for e in exc.recipients}
            raise self._refused(failed, all_refused=True) from self._cause(exc)
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            raise self._error(exc) from self._cause(exc)
        finally:
            if not sent:
                smtp.close()
        await self._quit(smtp)
        failed = {r: (response.code, response.message) for r, response in refused.items()}
        later = {r for r, (code, _) in failed.items() if not _is_permanent(code)}
        if failed:
            log.warning(
                "email %s: %s: %s",
                self._id,
                what,
                self._scrub(self._describe(failed, len(recipients))),
            )
        if later:
            self._remember(key, frozenset(self.to) - later)
            raise self._refused(failed, all_refused=False)
        self._served.pop(key, None)
        log.debug("email %s: %s sent to %d recipients", self._id, what, len(recipients))

    async def close(self) -> None:
        """Nothing to release: each send opens and closes its own connection."""
        return None

    # --- helpers --------------------------------------------------------------------------------

    async def _quit(self, smtp: aiosmtplib.SMTP) -> None:
        """Say QUIT after the message was accepted; if that fails, it is delivered all the same."""
        try:
            await smtp.quit(timeout=min(self.timeout_s, _QUIT_TIMEOUT_S))
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()

    def _remember(self, key: str, served: frozenset[str]) -> None:
        self._served[key] = served
        self._served.move_to_end(key)
        while len(self._served) > _PENDING_MAX:
            self._served.popitem(last=False)

    def _where(self) -> str:
        return f"email {self._id} via {self.host}:{self.port}"

    def _error(self, exc: BaseException) -> DeliveryError:
        """Our error for an SMTP, network or address failure: 5xx and bad setups are permanent,
        4xx, timeouts and dropped connections are worth another try."""
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            retryable = not _is_permanent(exc.code)
            reason = f"SMTP {exc.code} {exc.message}"
            if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                reason = f"login refused: {reason}"
        elif _cert_rejected(exc):
            retryable, reason = False, f"TLS certificate not trusted: {exc}"
        elif isinstance(exc, TimeoutError):
            retryable, reason = True, f"timed out after {self.timeout_s:g} s: {exc}"
        elif isinstance(exc, OSError):
            retryable, reason = True, f"connection failed: {exc}"
        else:  # no STARTTLS or AUTH offered, an address that cannot be sent
            retryable, reason = False, f"{type(exc).__name__}: {exc}"
        return DeliveryError(self._scrub(f"{self._where()}: {reason}"), retryable=retryable)

    def _refused(self, failed: dict[str, tuple[int, str]], *, all_refused: bool) -> DeliveryError:
        """The error for refused recipients: retryable when any refusal was temporary."""
        retryable = any(not _is_permanent(code) for code, _ in failed.values())
        what = "all recipients refused" if all_refused else "recipients refused temporarily"
        reasons = "; ".join(f"{r}: {code} {text}" for r, (code, text) in failed.items())
        return DeliveryError(
            self._scrub(f"{self._where()}: {what}: {reasons}"), retryable=retryable
        )

    @staticmethod
    def _describe(failed: dict[str, tuple[int, str]], total: int) -> str:
        reasons = "; ".join(f"{r}: {code} {text}" for r, (code, text) in failed.items())
        return f"{len(failed)} of {total} recipients refused ({reasons})"

    @staticmethod
    def _secret_forms(username: str | None, password: str | None) -> tuple[str, ...]:
        """The password and the encodings AUTH PLAIN/LOGIN put on the wire, which a server could
        echo back."""
        if not password:
            return ()
        plain = f"\0{username or ''}\0{password}".encode()
        forms = (password, base64.b64encode(password.encode()), base64.b64encode(plain))
        return tuple(f if isinstance(f, str) else f.decode() for f in forms)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def _cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain from, or None when its text would reveal the password."""
        shown = f"{exc} {exc.args!r}"
        return None if any(s in shown for s in self._secrets) else exc
