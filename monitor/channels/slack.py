"""Slack channel: an incoming webhook, or a bot token posting with ``chat.postMessage``.

Messages are Block Kit built with ``slack_sdk.models.blocks``, so the SDK validates them. Every
text that comes from a feed goes through ``escape_mrkdwn``: ``&``, ``<`` and ``>`` become
entities (so a headline can neither ping ``<!channel>`` nor forge ``<http://x|y>``), and the
formatting characters ``*``, ``_``, ``~`` and the backtick become look-alikes that Slack does not
parse (∗ ˍ ∼ ˋ), so feed text can never open or close the bold we add. Look-alikes rather than
zero-width characters because Slack's rules for formatting next to invisible characters are
undocumented, while a character that is not ``*`` is never bold markup. Text objects are also
``verbatim``, so Slack does not turn a literal ``@channel`` or ``#general`` into a mention.

Payload conventions: the first block's ``block_id`` is ``alert-<alert id>`` on both transports
(a receiver can count deliveries by it); ``chat.postMessage`` also carries ``metadata`` of
event type ``newsmonitor_alert`` with the alert, story and item ids. Follow-ups of a story
share their alert id with its first alert, since that id is derived from (rule, story).

Limits hold by construction: at most six blocks (``MAX_BLOCKS`` is 50), and each piece of
feed text has its own budget (title, URL, source, snippets), so that every section stays within
``SECTION_LIMIT``, the fallback ``text`` within ``FALLBACK_LIMIT`` and the whole message far
below ``MESSAGE_LIMIT``. Budgets count UTF-16 code units, never fewer than Python's characters.
Should a change break that, the SDK's own validation refuses the blocks and the alert fails
permanently rather than being cut blindly.

Neither the token nor the webhook URL (which is a secret too) appears in an error or log line:
errors name the channel id, the method and Slack's error code, and the SDK logs through a
logger held at WARNING so that its debug lines, which carry the URL, are never built.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from monitor.channels.base import Threads
from monitor.core.text import highlight_runs, snippets
from monitor.errors import ConfigError, DeliveryError, StoreError
from monitor.http import parse_retry_after
from monitor.models import Alert, Digest, Severity

__all__ = [
    "FALLBACK_LIMIT",
    "MAX_BLOCKS",
    "MESSAGE_LIMIT",
    "SECTION_LIMIT",
    "SlackChannel",
    "SlackMessage",
    "build_digest",
    "build_message",
    "escape_mrkdwn",
    "link_target",
]

logger = logging.getLogger(__name__)
_sdk_logger = logging.getLogger(f"{__name__}.sdk")
_sdk_logger.setLevel(logging.WARNING)

SECTION_LIMIT = 3000  # characters of one section's (or context element's) text
MAX_BLOCKS = 50
MESSAGE_LIMIT = 40_000  # characters of text in one message
FALLBACK_LIMIT = 1000  # our own cap on the plain ``text`` shown in notifications

_TITLE_BUDGET = 600
_SOURCE_BUDGET = 200
_URL_LIMIT = 1500
_SNIPPET_WIDTH = 240
_SNIPPETS = 3
_EVENT_TYPE = "newsmonitor_alert"
_DIGEST_EVENT_TYPE = "newsmonitor_digest"
_CONFIRM_SLACK_S = 60.0  # clocks differ: look this much further back than the send began
_CONFIRM_PAGES = 20
_DIGEST_FOLLOWUPS = 10  # lines per story beyond its first alert

_MRKDWN = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"}
)
_URL_UNSAFE = str.maketrans({"|": "%7C", "<": "%3C", ">": "%3E", " ": "%20", '"': "%22"})
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMOJI: dict[Severity, str] = {
    "low": ":white_circle:",
    "normal": ":large_blue_circle:",
    "high": ":large_orange_circle:",
    "critical": ":red_circle:",
}
# Slack error codes worth another try; any other ``ok: false`` (invalid_payload,
# channel_not_found, channel_is_archived, invalid_auth, not_authed, account_inactive,
# token_revoked, not_in_channel, msg_too_long, no_text, invalid_blocks, …) is permanent.
_TRANSIENT_CODES = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


def escape_mrkdwn(text: str) -> str:
    """Feed text made inert for mrkdwn: entities for ``& < >``, look-alikes for ``* _ ~ ```."""
    return text.translate(_MRKDWN)


def link_target(url: str | None) -> str | None:
    """``url`` made safe inside ``<url|label>``, or None when it should not be linked:
    http(s) only, no whitespace, ``|`` ``<`` ``>`` percent-encoded, ``&`` as ``&amp;``."""
    if not url:
        return None
    url = _CONTROL.sub("", url.strip())
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    target = url.translate(_URL_UNSAFE).replace("&", "&amp;")
    return target if _units(target) <= _URL_LIMIT else None


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One Slack message: validated blocks and the plain ``text`` used in notifications."""

    text: str
    blocks: tuple[Block, ...]

    def block_dicts(self) -> list[dict[str, Any]]:
        """The blocks as JSON objects; ``to_dict`` validates each one."""
        return [block.to_dict() for block in self.blocks]


def build_message(alert: Alert, *, compact: bool = False) -> SlackMessage:
    """The message for ``alert``; ``compact`` is the one-line update sent for a follow-up
    through a webhook, where there is no thread to reply in."""
    item = alert.item
    title = _title(alert)
    source = _clip_plain(item.source, _SOURCE_BUDGET)
    first_id = _block_id(alert)
    if compact:
        line = f"↳ Update on `{_clip_plain(alert.story, 200)}`: {title} ({source})"
        text = f"↳ Update: {_fallback_title(alert)} ({source})"
        return SlackMessage(text, (_section(line, first_id),))

    lead = f"*{alert.severity.capitalize()}* · {_clip_plain(alert.rule_name, 300)}"
    if alert.followup:
        lead += " · ↳ update"
    blocks: list[Block] = [
        _section(f"{_EMOJI.get(alert.severity, ':white_circle:')} {title}\n{lead}", first_id),
        _context(_meta(alert, source), "meta"),
    ]
    spans = [(m.start, m.end) for m in alert.matches if m.field == "text"]
    if item.text.strip():
        for index, piece in enumerate(
            snippets(item.text, spans, width=_SNIPPET_WIDTH, limit=_SNIPPETS)
        ):
            body = _render(piece.text, piece.highlights, SECTION_LIMIT - 3)
            if not body:
                continue
            before = "…" if piece.cut_before else ""
            after = "…" if piece.cut_after and not body.endswith("…") else ""
            blocks.append(_section(f">{before}{body}{after}", f"snippet-{index}"))
    footer = f"story `{_clip_plain(alert.story, 200)}` · alert `{_clip_plain(alert.id, 200)}`"
    blocks.append(_context(footer, "ids"))
    prefix = "↳ Update" if alert.followup else f"[{alert.severity}]"
    text = f"{prefix} {_clip_plain(alert.rule_name, 200)}: {_fallback_title(alert)} ({source})"
    return SlackMessage(text, tuple(blocks))


def build_digest(digest: Digest) -> SlackMessage:
    """One message for ``digest``: a heading, then each story with its alerts, line by line
    in sections within every limit; what does not fit is counted at the end."""
    summary = _clip_plain(digest.summary(), 500)
    head = _section(f":newspaper: *Digest* · {summary}", _digest_block_id(digest))
    blocks: list[Block] = [head]
    room = MESSAGE_LIMIT - _units(summary) - 200
    pending: list[str] = []
    size = 0
    shown = 0  # stories whose first line is in the message
    stories = digest.stories()
    full = False
    for _, alerts in stories:
        lines = [_digest_line(alerts[0], first=True)]
        lines += [_digest_line(alert, first=False) for alert in alerts[1 : _DIGEST_FOLLOWUPS + 1]]
        if len(alerts) > _DIGEST_FOLLOWUPS + 1:
            lines.append(f"    ↳ …and {len(alerts) - _DIGEST_FOLLOWUPS - 1} more updates")
        for number, line in enumerate(lines):
            cost = _units(line) + 1
            if size + cost > SECTION_LIMIT and pending:
                if len(blocks) >= MAX_BLOCKS - 2:
                    full = True
                    break
                blocks.append(_section("\n".join(pending), f"stories-{len(blocks)}"))
                pending, size = [], 0
            if cost > room:
                full = True
                break
            pending.append(line)
            size += cost
            room -= cost
            shown += number == 0
        if full:
            break
    if pending:
        blocks.append(_section("\n".join(pending), f"stories-{len(blocks)}"))
    if shown < len(stories):
        hidden = sum(len(alerts) for _, alerts in stories[shown:])
        rest = f"…and {len(stories) - shown} more stories ({hidden} alerts) not shown here"
        blocks.append(_context(rest, "more"))
    text = f"Digest: {_clip_plain(digest.summary(), FALLBACK_LIMIT - 10)}"
    return SlackMessage(text, tuple(blocks))


def _digest_line(alert: Alert, *, first: bool) -> str:
    """One alert in a digest: the linked title, and for a story's first alert its rule."""
    title = _title(alert)
    source = _clip_plain(alert.item.source, _SOURCE_BUDGET)
    if not first:
        return f"    ↳ {title} ({source})"
    rule = _clip_plain(alert.rule_name, 200)
    extra = f" · {alert.sources} sources" if alert.sources > 1 else ""
    return f"{_EMOJI.get(alert.severity, ':white_circle:')} {title}\n    {rule} · {source}{extra}"


def _digest_block_id(digest: Digest) -> str:
    return f"digest-{hashlib.sha256(digest.id.encode()).hexdigest()[:40]}"


def _alert_metadata(alert: Alert) -> dict[str, Any]:
    return {
        "event_type": _EVENT_TYPE,
        "event_payload": {
            "alert_id": alert.id,
            "story": alert.story,
            "item_id": alert.item.id,
            "followup": alert.followup,
        },
    }


def _carries(message: Mapping[str, Any], subject: Alert | Digest) -> bool:
    """Whether a message from Slack's history is the one posted for ``subject``."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict):
        return False
    payload = metadata.get("event_payload")
    if not isinstance(payload, dict):
        return False
    if isinstance(subject, Digest):
        return (
            metadata.get("event_type") == _DIGEST_EVENT_TYPE
            and payload.get("digest_id") == subject.id
        )
    return (
        metadata.get("event_type") == _EVENT_TYPE
        and payload.get("alert_id") == subject.id
        and payload.get("item_id") == subject.item.id
    )


class SlackChannel:
    """Posts each alert to Slack through slack-sdk's async clients; any refusal is raised as
    ``DeliveryError``, retryable for timeouts, connection errors, HTTP 5xx and 429 (with its
    Retry-After). It never retries by itself: the dispatcher does."""

    rate_per_s: ClassVar[float | None] = 1.0  # Slack: one message per second per channel
    burst: ClassVar[int] = 3

    def __init__(
        self,
        id: str,
        *,
        webhook_url: str | None,
        token: str | None,
        channel: str | None,
        api_url: str = "https://slack.com/api/",
        threads: Threads,
        timeout_s: float = 10.0,
    ) -> None:
        if (webhook_url is None) == (token is None and channel is None):
            raise ConfigError(f"channel {id}: give either webhook_url or token and channel")
        if webhook_url is None and not (token and token.strip() and channel):
            raise ConfigError(f"channel {id}: a bot token needs both token and channel")
        self._id = id
        self._webhook_url = webhook_url
        self._token = token.strip() if token else None
        self._channel = channel
        self._api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._threads = threads
        self._timeout_s = timeout_s
        if webhook_url is not None:
            self.host = _host(webhook_url, f"channel {id}: webhook_url")
        else:
            self.host = _host(api_url, f"channel {id}: api_url")
        self._http: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._hook: AsyncWebhookClient | None = None

    @property
    def id(self) -> str:
        return self._id

    async def send(self, alert: Alert) -> None:
        """Post ``alert``; with a bot token, a follow-up goes into its story's thread."""
        if self._webhook_url is not None:
            message = build_message(alert, compact=alert.followup)
            await self._post_webhook(message)
            logger.debug("slack %s (webhook) accepted alert %s", self._id, alert.id)
            return
        try:
            thread = await self._threads.get_thread(self._id, alert.story)
        except StoreError as exc:
            raise self._error("cannot read the story's thread", True) from exc
        reply_to = thread if alert.followup else None
        ts = await self._post_message(build_message(alert), _alert_metadata(alert), reply_to)
        logger.debug(
            "slack %s accepted alert %s as %s%s",
            self._id,
            alert.id,
            ts,
            f" in thread {reply_to}" if reply_to else "",
        )
        if thread is None and ts:
            try:
                await self._threads.set_thread(self._id, alert.story, ts)
            except StoreError as exc:  # sent already: a retry would post it twice
                logger.warning(
                    "slack %s: could not remember the thread of story %s: %s",
                    self._id,
                    alert.story,
                    exc,
                )

    async def send_digest(self, digest: Digest) -> None:
        """Post ``digest`` as one message (never in a thread)."""
        message = build_digest(digest)
        if self._webhook_url is not None:
            await self._post_webhook(message)
        else:
            metadata = {"event_type": _DIGEST_EVENT_TYPE, "event_payload": {"digest_id": digest.id}}
            await self._post_message(message, metadata, None)
        logger.debug("slack %s accepted digest %s", self._id, digest.id)

    async def confirm(self, subject: Alert | Digest, since: float) -> bool | None:
        """Whether ``subject`` was posted since ``since``, found by its message metadata in the
        channel's history (or its story's thread); None through a webhook, which cannot be
        asked, or when the token may not read the history (scope ``channels:history``)."""
        if self._webhook_url is not None:
            return None
        assert self._channel is not None
        thread = None
        if isinstance(subject, Alert) and subject.followup:
            try:
                thread = await self._threads.get_thread(self._id, subject.story)
            except StoreError as exc:
                raise self._error("cannot read the story's thread", True) from exc
        oldest = f"{max(since - _CONFIRM_SLACK_S, 0):.6f}"
        # The message, if it arrived, was posted within the send's timeout after ``since``.
        latest = f"{since + self._timeout_s + _CONFIRM_SLACK_S:.6f}" if since > 0 else None
        cursor: str | None = None
        web = self._web_client()
        for _ in range(_CONFIRM_PAGES):
            args: dict[str, Any] = {
                "channel": self._channel,
                "oldest": oldest,
                "latest": latest,
                "include_all_metadata": True,
                "limit": 200,
                "cursor": cursor,
            }
            try:
                if thread is not None:
                    response = await web.conversations_replies(ts=thread, **args)
                else:
                    response = await web.conversations_history(**args)
            except TimeoutError as exc:
                raise self._error(f"no answer within {self._timeout_s:g}s", True) from exc
            except aiohttp.ClientError as exc:
                raise self._error(f"request failed ({type(exc).__name__})", True) from exc
            except SlackApiError as exc:
                failure = self._api_error(exc, "conversations.history")
                if failure.retryable:
                    raise failure from exc
                logger.warning("slack %s cannot read its history: %s", self._id, failure)
                return None
            except (SlackClientError, AttributeError):
                return None
            for message in response.get("messages") or []:
                if isinstance(message, dict) and _carries(message, subject):
                    await self._remember_thread(subject, message.get("ts"))
                    return True
            meta = response.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor:
                return False
        return None  # more messages since then than we page through: cannot tell

    async def _remember_thread(self, subject: Alert | Digest, ts: object) -> None:
        """A story's first alert, found in the history: its ``ts`` opens the story's thread."""
        if not isinstance(subject, Alert) or subject.followup or not isinstance(ts, str):
            return
        try:
            if await self._threads.get_thread(self._id, subject.story) is None:
                await self._threads.set_thread(self._id, subject.story, ts)
        except StoreError as exc:
            logger.warning("slack %s: could not remember a thread: %s", self._id, exc)

    async def close(self) -> None:
        """Close the HTTP session; a later ``send`` opens a new one."""
        http, self._http, self._web, self._hook = self._http, None, None, None
        if http is not None:
            await http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
            self._web = self._hook = None
        return self._http

    def _web_client(self) -> AsyncWebClient:
        session = self._session()
        if self._web is None:
            self._web = AsyncWebClient(
                token=self._token,
                base_url=self._api_url,
                session=session,
                logger=_sdk_logger,
                retry_handlers=[],
            )
        return self._web

    def _webhook_client(self) -> AsyncWebhookClient:
        session = self._session()
        if self._hook is None:
            assert self._webhook_url is not None
            self._hook = AsyncWebhookClient(
                self._webhook_url, session=session, logger=_sdk_logger, retry_handlers=[]
            )
        return self._hook

    async def _post_message(
        self, message: SlackMessage, metadata: dict[str, Any], thread_ts: str | None
    ) -> str | None:
        """``chat.postMessage``; returns the new message's ``ts``."""
        assert self._channel is not None
        blocks = self._blocks(message)
        with self._posting():
            try:
                response = await self._web_client().chat_postMessage(
                    channel=self._channel,
                    text=message.text,
                    blocks=blocks,
                    thread_ts=thread_ts,
                    unfurl_links=False,
                    unfurl_media=False,
                    link_names=False,
                    metadata=metadata,
                )
            except SlackApiError as exc:
                raise self._api_error(exc) from exc
            except AttributeError as exc:  # slack-sdk reads a 200 text/plain answer as a dict
                raise self._error(
                    "chat.postMessage failed: answer is not JSON (HTTP 200)", False
                ) from exc
        ts = response.get("ts")
        return ts if isinstance(ts, str) and ts else None

    async def _post_webhook(self, message: SlackMessage) -> None:
        body = {
            "text": message.text,
            "blocks": self._blocks(message),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        with self._posting():
            response = await self._webhook_client().send_dict(body)
        status = response.status_code
        if 200 <= status < 300:
            return
        what = f"HTTP {status} {_code(response.body) or 'error'}"
        raise self._failure(what, status, None, response.headers)

    @contextmanager
    def _posting(self) -> Iterator[None]:
        """How a post fails on the way: retryable for a timeout or a connection error (and
        ``uncertain`` unless the connection never opened: it may have arrived), permanent for
        a request the SDK itself refused."""
        try:
            yield
        except TimeoutError as exc:
            raise self._error(
                f"no answer within {self._timeout_s:g}s", True, uncertain=True
            ) from exc
        except aiohttp.ClientError as exc:
            maybe_sent = not isinstance(exc, aiohttp.ClientConnectorError)
            raise self._error(
                f"request failed ({type(exc).__name__})", True, uncertain=maybe_sent
            ) from exc
        except SlackClientError as exc:
            raise self._error(
                f"request refused by the client ({type(exc).__name__})", False
            ) from exc

    def _blocks(self, message: SlackMessage) -> list[dict[str, Any]]:
        try:
            return message.block_dicts()
        except SlackClientError as exc:
            raise self._error(f"invalid Block Kit ({exc})", False) from exc

    def _api_error(self, exc: SlackApiError, method: str = "chat.postMessage") -> DeliveryError:
        response = exc.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        code = code if isinstance(code, str) else None
        headers = getattr(response, "headers", None) or {}
        what = f"{method} failed: {_code(code) or 'unexpected answer'}"
        if isinstance(status, int):
            what += f" (HTTP {status})"
        return self._failure(what, status if isinstance(status, int) else 0, code, headers)

    def _failure(
        self, what: str, status: int, code: str | None, headers: Mapping[str, Any]
    ) -> DeliveryError:
        """Retryable for 408, 429, 5xx and transient Slack codes; permanent otherwise."""
        retryable = status in (408, 429) or status >= 500 or code in _TRANSIENT_CODES
        wait = None
        if retryable:
            value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
            wait = parse_retry_after(str(value) if value is not None else None, datetime.now(UTC))
            if wait is not None:
                what += f", retry after {wait:g}s"
        return self._error(what, retryable, wait)

    def _error(
        self, what: str, retryable: bool, wait: float | None = None, *, uncertain: bool = False
    ) -> DeliveryError:
        kind = "webhook" if self._webhook_url is not None else "bot"
        return DeliveryError(
            f"slack {self._id} ({kind}, {self.host}): {what}",
            retryable=retryable,
            retry_after_s=wait,
            uncertain=uncertain,
        )


# --- rendering ----------------------------------------------------------------------------------


def _units(text: str) -> int:
    """Length in UTF-16 code units, as Slack may count it; never less than ``len``."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _render(text: str, marks: Iterable[tuple[int, int]], budget: int) -> str:
    """Feed text on one line, escaped, with the ``marks`` in bold, in at most ``budget`` units.
    A cut falls between escaped characters (never inside ``&amp;``), closes an open bold and
    ends with "…"."""
    pieces = [
        (_SPACE.sub(" ", _CONTROL.sub(" ", p)), bold) for p, bold in highlight_runs(text, marks)
    ]
    if pieces:
        pieces[0] = (pieces[0][0].lstrip(), pieces[0][1])
        pieces[-1] = (pieces[-1][0].rstrip(), pieces[-1][1])
    whole = "".join(_run(piece, bold) for piece, bold in pieces)
    if _units(whole) <= budget:
        return whole
    out: list[str] = []
    room = budget - 1  # for the ellipsis
    for piece, bold in pieces:
        run = _run(piece, bold)
        if _units(run) <= room:
            out.append(run)
            room -= _units(run)
            continue
        core = piece.strip() if bold else piece
        lead = piece[: len(piece) - len(piece.lstrip())] if bold else ""
        room -= _units(lead) + (2 if bold else 0)
        kept: list[str] = []
        for char in core:
            escaped = escape_mrkdwn(char)
            if _units(escaped) > room:
                break
            kept.append(escaped)
            room -= _units(escaped)
        cut = "".join(kept).rstrip()
        if cut:
            out.append(f"{lead}*{cut}*" if bold else cut)
        break
    return "".join(out).rstrip() + "…"


def _run(piece: str, bold: bool) -> str:
    """One escaped piece; a bold one keeps its surrounding spaces outside the asterisks, since
    Slack only reads ``*`` as bold next to a word."""
    core = piece.strip() if bold else piece
    if not bold or not core:
        return escape_mrkdwn(piece)
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()) :]
    return f"{lead}*{escape_mrkdwn(core)}*{trail}"


def _clip_plain(text: str, budget: int) -> str:
    """Feed or config text escaped for mrkdwn, on one line, in at most ``budget`` units."""
    return _render(text, (), budget)


def _title(alert: Alert) -> str:
    """The headline with its matched terms in bold, linked to the article when it has a URL."""
    item = alert.item
    marks = [(m.start, m.end) for m in alert.matches if m.field == "title"]
    label = _render(item.title, marks, _TITLE_BUDGET) if item.title.strip() else ""
    if not label:
        label = _clip_plain(item.url or item.id, _TITLE_BUDGET)
    target = link_target(item.url)
    return f"<{target}|{label}>" if target else label


def _fallback_title(alert: Alert) -> str:
    return _clip_plain(alert.item.title or alert.item.url or alert.item.id, 300)


def _meta(alert: Alert, source: str) -> str:
    parts = [source]
    published = alert.item.published
    if published is not None:
        when = published if published.tzinfo else published.replace(tzinfo=UTC)
        shown = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts.append(f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{shown}>")
    if alert.sources > 1:
        parts.append(f"also carried by {alert.sources} sources")
    return " · ".join(parts)


def _section(text: str, block_id: str) -> SectionBlock:
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text, verbatim=True))


def _context(text: str, block_id: str) -> ContextBlock:
    element = MarkdownTextObject(text=text, verbatim=True)
    return ContextBlock(block_id=block_id, elements=[element])


def _block_id(alert: Alert) -> str:
    """``alert-<id>``; an id too long for Slack's 255 characters is replaced by its hash."""
    if len(alert.id) <= 200 and re.fullmatch(r"[\w.:-]+", alert.id):
        return f"alert-{alert.id}"
    return f"alert-{hashlib.sha256(alert.id.encode()).hexdigest()[:40]}"


def _code(value: object) -> str | None:
    """A Slack error code fit for a message: one short line of printable text, or None."""
    if not isinstance(value, str):
        return None
    line = _SPACE.sub(" ", _CONTROL.sub(" ", value)).strip()
    return line[:120] or None


def _host(url: str, what: str) -> str:
    """The host of ``url``; the rest of a webhook URL is its secret and is never shown."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http:// or https:// URL with a host")
    return parts.netloc.rpartition("@")[2]
