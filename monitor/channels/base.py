"""The one-method protocol every channel implements."""

from __future__ import annotations

from typing import Protocol

from monitor.models import Alert


class Channel(Protocol):
    """Somewhere alerts go. ``send`` returns once the channel accepted the alert, or raises
    ``DeliveryError(retryable=…)``; it never reports failure by returning a value."""

    @property
    def id(self) -> str: ...

    async def send(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...
