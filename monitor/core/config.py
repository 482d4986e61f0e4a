"""The watch configuration's schema: every source's, channel's, entity's and rule's keys and
values, as pydantic models that reject what they do not know.

Values that read like time (``every: 5m``, ``cooldown: 6h``), digests and quiet hours are
parsed here; queries are compiled by ``monitor/core/rules.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
)

from monitor.core.schedule import OFF, DigestSchedule, QuietHours, parse_digest, parse_quiet_hours
from monitor.models import Severity

__all__ = [
    "CHANNEL_ADAPTER",
    "CHANNEL_SPECS",
    "ENTITY_ADAPTER",
    "RULE_ADAPTER",
    "SOURCE_ADAPTER",
    "SOURCE_SPECS",
    "SPEC_TYPES",
    "ChannelSpec",
    "ConsoleChannelSpec",
    "EmailChannelSpec",
    "EntitySpec",
    "FeedSourceSpec",
    "ReplaySourceSpec",
    "RuleSpec",
    "SlackChannelSpec",
    "SourceSpec",
    "WebhookChannelSpec",
    "WireSourceSpec",
    "digest_setting",
    "parse_duration",
]

# --- values -------------------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: object) -> int:
    """``90``, ``"45s"``, ``"5m"``, ``"12h"``, ``"2d"``, ``"1h30m"`` → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 5m, 12h or 2d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        match = _DURATION.fullmatch(text)
        if text and match:
            d, h, m, s = (int(g) if g else 0 for g in match.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
    raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 12h or 2d")


Duration = Annotated[int, BeforeValidator(parse_duration)]


def _check_digest(value: str) -> str:
    digest_setting(value)
    return value


def _check_quiet(value: str) -> str:
    parse_quiet_hours(value)
    return value


def _digest_off(value: object) -> object:
    return "off" if value is False else value  # YAML reads a bare `off` as false


def _check_http_url(value: str) -> str:
    """A URL polling can fetch: http or https, with a host. The message never repeats the URL
    (it may hold a secret)."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(f"a source URL must start with http:// or https:// (this one has {shown})")
    if not parts.hostname:
        raise ValueError("a source URL needs a host after the scheme: https://host/path")
    return value


HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
DigestText = Annotated[str, BeforeValidator(_digest_off), AfterValidator(_check_digest)]
QuietText = Annotated[str, AfterValidator(_check_quiet)]
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
FieldName = Literal["title", "text", "url", "source", "author"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- sources ------------------------------------------------------------------------------------


def _check_backlog(value: object) -> object:
    if value is False or value == "none":
        return "0s"  # YAML reads a bare `none`... as a string; `no`/`off` as false
    if value == "all":
        return value
    parse_duration(value)
    return value


Backlog = Annotated[str | int, BeforeValidator(_check_backlog)]
"""How far back a new source's first poll alerts: a duration, ``all`` or ``none``."""


class ReplaySourceSpec(_Spec):
    """Files in a directory (``seeds/``-style text, feed files, JSON), re-read every ``every``."""

    id: Id
    type: Literal["replay"]
    path: str
    every: Duration = 60
    backlog: Backlog = "all"  # files are replayed to be seen
    enabled: bool = True


class FeedSourceSpec(_Spec):
    """An RSS, Atom, RDF or JSON Feed URL, polled on an adaptive schedule."""

    id: Id
    type: Literal["feed"]
    url: HttpUrl
    backlog: Backlog = "1h"
    every: Duration = 300
    min: Duration = 60
    max: Duration = 3600
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    enabled: bool = True


class WireSourceSpec(_Spec):
    """A JSON wire service: IPTC ninjs, or any API through JMESPath ``mapping``."""

    id: Id
    type: Literal["wire"]
    url: HttpUrl
    backlog: Backlog = "1h"
    format: Literal["ninjs", "mapping"] = "ninjs"
    mapping: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    every: Duration = 300
    min: Duration = 60
    max: Duration = 3600
    enabled: bool = True


SourceSpec: TypeAlias = Annotated[
    ReplaySourceSpec | FeedSourceSpec | WireSourceSpec, Field(discriminator="type")
]

# --- channels -----------------------------------------------------------------------------------


class _ChannelSpec(_Spec):
    """What every channel accepts besides its own settings."""

    default: bool = False
    digest: DigestText | None = None
    quiet_hours: QuietText | None = None
    uncertain: Literal["resend", "dead_letter"] = "resend"
    operator: bool = False

    @property
    def digest_schedule(self) -> DigestSchedule | None:
        setting = digest_setting(self.digest)
        return None if setting == "off" else setting

    @property
    def quiet(self) -> QuietHours | None:
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None


class ConsoleChannelSpec(_ChannelSpec):
    """Alerts printed to standard output: a human line each, or JSON lines."""

    id: Id
    type: Literal["console"]
    json_lines: bool = Field(default=False, alias="json")


class SlackChannelSpec(_ChannelSpec):
    id: Id
    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api/"
    signing_secret: SecretStr | None = None  # alerts get buttons; /slack/actions checks them


class EmailChannelSpec(_ChannelSpec):
    model_config = ConfigDict(populate_by_name=True)

    id: Id
    type: Literal["email"]
    host: str
    port: int | None = None
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: SecretStr | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)


class WebhookChannelSpec(_ChannelSpec):
    id: Id
    type: Literal["webhook"]
    url: SecretStr
    secret: SecretStr | None = None


ChannelSpec: TypeAlias = Annotated[
    ConsoleChannelSpec | SlackChannelSpec | EmailChannelSpec | WebhookChannelSpec,
    Field(discriminator="type"),
]

# --- entities and rules -------------------------------------------------------------------------


class EntitySpec(_Spec):
    aliases: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


_DEFAULT_FIELDS: list[FieldName] = ["title", "text"]


Followups = Literal["thread", "alert", "off"]
"""What a rule does with a later report of a story it alerted on: post it in the story's
thread, alert on it as a message of its own, or stay silent."""


def _off(value: Any) -> Any:
    return "off" if value is False else value  # YAML reads a bare off as false


FollowupsText = Annotated[Followups, BeforeValidator(_off)]


class RuleSpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)

    id: Id
    name: str | None = None
    query: str | None = None
    all_: list[Any] | None = Field(default=None, alias="all")
    any_: list[Any] | None = Field(default=None, alias="any")
    none_: list[Any] | None = Field(default=None, alias="none")
    severity: Severity = "normal"
    channels: list[str] | None = None
    cooldown: Annotated[Duration, Field(ge=1)] = 24 * 3600
    sources: list[str] | None = None
    fields: list[FieldName] = Field(default_factory=lambda: _DEFAULT_FIELDS.copy(), min_length=1)
    digest: DigestText | None = None
    followups: FollowupsText = "thread"
    enabled: bool = True


SOURCE_SPECS = (ReplaySourceSpec, FeedSourceSpec, WireSourceSpec)
CHANNEL_SPECS = (ConsoleChannelSpec, SlackChannelSpec, EmailChannelSpec, WebhookChannelSpec)
SPEC_TYPES = {
    "sources": tuple(get_args(m.model_fields["type"].annotation)[0] for m in SOURCE_SPECS),
    "channels": tuple(get_args(m.model_fields["type"].annotation)[0] for m in CHANNEL_SPECS),
}
SOURCE_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceSpec)
CHANNEL_ADAPTER: TypeAdapter[Any] = TypeAdapter(ChannelSpec)
RULE_ADAPTER = TypeAdapter(RuleSpec)
ENTITY_ADAPTER = TypeAdapter(EntitySpec)


def digest_setting(text: str | None) -> DigestSchedule | Literal["off"] | None:
    """A ``digest:`` value: its schedule, "off" (send at once), or None when not set."""
    if text is None:
        return None
    return "off" if text.strip().lower() in OFF else parse_digest(text)
