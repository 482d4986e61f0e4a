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

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from monitor.channels.base import Threads
from monitor.channels.slack_actions import action_block
from monitor.channels.slack_blocks import SlackMessage, build_digest, build_message, one_line
from monitor.errors import ConfigError, DeliveryError, StoreError
from monitor.http import parse_retry_after
from monitor.models import Alert, Digest

__all__ = ["SlackChannel"]

logger = logging.getLogger(__name__)
_sdk_logger = logging.getLogger(f"{__name__}.sdk")
_sdk_logger.setLevel(logging.WARNING)


_EVENT_TYPE = "newsmonitor_alert"
_DIGEST_EVENT_TYPE = "newsmonitor_digest"
_CONFIRM_SLACK_S = 60.0  # clocks differ: look this much further back than the send began
_CONFIRM_PAGES = 20

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
        buttons: bool = False,
    ) -> None:
        """``buttons``: alerts carry Mute story, Snooze rule and Not relevant (a bot token whose
        app has a signing secret, and the daemon's ``/slack/actions`` reachable by Slack)."""
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
        self._buttons = buttons and webhook_url is None
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
        message = build_message(alert)
        if self._buttons:
            message = replace(message, blocks=(*message.blocks, action_block(alert)))
        ts = await self._post_message(message, _alert_metadata(alert), reply_to)
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


def _code(value: object) -> str | None:
    """A Slack error code fit for a message: one short line of printable text, or None."""
    if not isinstance(value, str):
        return None
    line = one_line(value)
    return line[:120] or None


def _host(url: str, what: str) -> str:
    """The host of ``url``; the rest of a webhook URL is its secret and is never shown."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http:// or https:// URL with a host")
    return parts.netloc.rpartition("@")[2]
