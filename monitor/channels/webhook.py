"""Webhook channel: each alert as a JSON POST in a versioned schema (``docs/webhook.md``).

With a secret, the request is signed like Stripe's webhooks: ``X-Newsmonitor-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``. Every request carries an
``Idempotency-Key`` derived from (alert, item), so a receiver can drop redeliveries.

The URL may hold a token of its own, so messages and logs name only its host; the secret
appears nowhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from monitor.core.text import snippets
from monitor.errors import ConfigError, DeliveryError
from monitor.http import USER_AGENT, parse_retry_after
from monitor.models import FIELDS, Alert, Digest

__all__ = [
    "DIGEST_EVENT",
    "DIGEST_SCHEMA",
    "EVENT",
    "SCHEMA",
    "SIGNATURE_HEADER",
    "WebhookChannel",
    "delivery_id",
    "digest_payload",
    "payload",
    "sign",
]

logger = logging.getLogger(__name__)

SCHEMA = "newsmonitor.alert/1"
DIGEST_SCHEMA = "newsmonitor.digest/1"
EVENT = "alert"
DIGEST_EVENT = "digest"
SIGNATURE_HEADER = "X-Newsmonitor-Signature"
_RETRYABLE = frozenset({408, 425, 429})
_SNIPPET_WIDTH = 240
_SNIPPETS_PER_FIELD = 3


def delivery_id(alert: Alert) -> str:
    """Stable for one (alert, item): a redelivery repeats it, a follow-up item changes it."""
    return hashlib.sha256(f"{alert.id}\0{alert.item.id}".encode()).hexdigest()[:24]


def payload(alert: Alert) -> dict[str, Any]:
    """The request body of schema ``newsmonitor.alert/1``; every field is in docs/webhook.md."""
    item = alert.item
    spans: dict[str, list[tuple[int, int]]] = {}
    for match in alert.matches:
        spans.setdefault(match.field, []).append((match.start, match.end))
    return {
        "schema": SCHEMA,
        "id": delivery_id(alert),
        "alert": {
            "id": alert.id,
            "rule": alert.rule,
            "rule_name": alert.rule_name,
            "severity": alert.severity,
            "story": alert.story,
            "followup": alert.followup,
            "sources": alert.sources,
            "created": alert.created.isoformat() if alert.created else None,
        },
        "item": {
            "id": item.id,
            "source": item.source,
            "title": item.title,
            "url": item.url,
            "published": item.published.isoformat() if item.published else None,
            "authors": list(item.authors),
            "tags": list(item.tags),
            "language": item.language,
        },
        "matches": [
            {
                "field": m.field,
                "term": m.term,
                "start": m.start,
                "end": m.end,
                "text": item.field(m.field)[m.start : m.end],
            }
            for m in alert.matches
        ],
        "snippets": [
            {
                "field": name,
                "text": piece.text,
                "highlights": [list(span) for span in piece.highlights],
                "cut_before": piece.cut_before,
                "cut_after": piece.cut_after,
            }
            for name in sorted(spans, key=_field_order)
            for piece in snippets(
                item.field(name), spans[name], width=_SNIPPET_WIDTH, limit=_SNIPPETS_PER_FIELD
            )
            if piece.highlights
        ],
    }


def digest_payload(digest: Digest) -> dict[str, Any]:
    """The request body of schema ``newsmonitor.digest/1``: the digest's alerts grouped by
    story, each alert exactly as in ``newsmonitor.alert/1`` (docs/webhook.md)."""
    return {
        "schema": DIGEST_SCHEMA,
        "id": digest.id,
        "channel": digest.channel,
        "due": digest.due.isoformat(),
        "schedule": digest.schedule,
        "count": len(digest.alerts),
        "stories": [
            {"story": story, "alerts": [payload(alert) for alert in alerts]}
            for story, alerts in digest.stories()
        ],
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Newsmonitor-Signature`` value: HMAC-SHA256 over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookChannel:
    """POSTs each alert to one URL through the shared client; any 2xx means accepted."""

    rate_per_s: ClassVar[float | None] = None
    burst: ClassVar[int] = 1
    idempotent: ClassVar[bool] = True
    """A resend repeats the ``Idempotency-Key``, so a receiver that honours it (docs/webhook.md)
    drops the copy: after a dispatcher died mid-send, sending again is safe."""

    def __init__(
        self,
        id: str,
        *,
        url: str,
        secret: str | None,
        client: httpx.AsyncClient,
        timeout_s: float = 10.0,
    ) -> None:
        invalid = ConfigError(f"channel {id}: url must be an http:// or https:// URL with a host")
        try:
            parts = urlsplit(url)
            httpx.URL(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except (ValueError, httpx.InvalidURL):
            raise invalid from None  # the library's message may quote the URL
        if not valid:
            raise invalid
        if secret == "":
            raise ConfigError(f"channel {id}: secret is empty; leave it out to send unsigned")
        self._id = id
        self._url = url
        self._secret = secret
        self._client = client
        self._timeout_s = timeout_s
        self.host = parts.netloc.rpartition("@")[2]

    @property
    def id(self) -> str:
        return self._id

    async def send(self, alert: Alert) -> None:
        """POSTs ``alert``; returns once a 2xx came back, else raises ``DeliveryError``."""
        key = delivery_id(alert)
        status = await self._post(payload(alert), key, EVENT)
        logger.debug(
            "webhook %s accepted alert %s as %s (%s, HTTP %d)",
            self._id,
            alert.id,
            key,
            self.host,
            status,
        )

    async def send_digest(self, digest: Digest) -> None:
        """POSTs ``digest`` in one request, keyed by the digest's id."""
        status = await self._post(digest_payload(digest), digest.id, DIGEST_EVENT)
        logger.debug(
            "webhook %s accepted digest %s (%s, HTTP %d)", self._id, digest.id, self.host, status
        )

    async def _post(self, document: dict[str, Any], key: str, event: str) -> int:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": key,
            "X-Newsmonitor-Event": event,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, int(time.time()), body)
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(
                    self._url,
                    content=body,
                    headers=headers,
                    timeout=self._timeout_s,
                    follow_redirects=False,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            what = f"no answer within {self._timeout_s:g}s"
            raise self._error(what, True, uncertain=sent) from exc
        except httpx.HTTPError as exc:
            refused = isinstance(exc, httpx.ConnectError)
            what = "could not connect" if refused else "request failed"
            raise self._error(
                f"{what} ({type(exc).__name__})", True, uncertain=not refused
            ) from exc
        self._check(response)
        return response.status_code

    async def close(self) -> None:
        """Nothing to release: the client is shared and closed by whoever made it."""
        return None

    def _check(self, response: httpx.Response) -> None:
        """Returns for a 2xx; otherwise raises, retryable for 408/425/429/5xx."""
        status = response.status_code
        if 200 <= status < 300:
            return
        what = f"HTTP {status} {_phrase(status)}".rstrip()
        if status in _RETRYABLE or status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            if wait is not None:
                what += f", retry after {wait:g}s"
            raise self._error(what, True, wait)
        if 300 <= status < 400:
            where = _origin(response.headers.get("location"), self._url)
            raise self._error(f"{what}: redirected to {where}; configure the exact URL", False)
        raise self._error(what, False)

    def _error(
        self, what: str, retryable: bool, wait: float | None = None, *, uncertain: bool = False
    ) -> DeliveryError:
        return DeliveryError(
            f"webhook {self._id} ({self.host}): {what}",
            retryable=retryable,
            retry_after_s=wait,
            uncertain=uncertain,
        )


def _field_order(name: str) -> int:
    return FIELDS.index(name) if name in FIELDS else len(FIELDS)


def _phrase(status: int) -> str:
    """The standard reason phrase; the server's own one is not repeated, it is its text."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _origin(location: str | None, url: str) -> str:
    """Where a redirect points, as scheme and host only: its path may repeat the URL's token."""
    if not location:
        return "nowhere (no Location header)"
    target, base = urlsplit(urljoin(url, location)), urlsplit(url)
    same = (target.path, target.query) == (base.path, base.query)
    host = target.netloc.rpartition("@")[2]
    return f"{target.scheme}://{host} ({'the same' if same else 'another'} path)"
