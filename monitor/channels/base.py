"""The one-method protocol every channel implements."""

from __future__ import annotations

from typing import Protocol

from monitor.models import Alert, Digest


class Threads(Protocol):
    """Where a channel remembers the message that opened a story's thread (Slack's ``ts``)."""

    async def get_thread(self, channel: str, story: str) -> str | None: ...

    async def set_thread(self, channel: str, story: str, ref: str) -> None: ...


class Channel(Protocol):
    """Somewhere alerts go. ``send`` returns once the channel accepted the alert, or raises
    ``DeliveryError(retryable=…)``; it never reports failure by returning a value."""

    @property
    def id(self) -> str: ...

    async def send(self, alert: Alert) -> None: ...

    async def send_digest(self, digest: Digest) -> None:
        """Several held alerts in one message, grouped by story; same contract as ``send``."""
        ...

    async def close(self) -> None: ...


class Confirms(Protocol):
    """A channel that can tell whether a message sent since ``since`` (epoch seconds) arrived:
    True or False, None when it cannot tell; ``DeliveryError`` when it cannot ask now. The
    dispatcher asks when a dispatcher died in the middle of a send."""

    async def confirm(self, subject: Alert | Digest, since: float) -> bool | None: ...
