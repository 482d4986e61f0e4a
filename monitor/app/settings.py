"""Process settings from the environment (prefix ``MONITOR_``) and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything that is not watch configuration: where state lives and how to log."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    redis_url: str | None = Field(
        default=None, description="Redis server URL; unset runs an embedded Redis in data_dir."
    )
    data_dir: Path = Field(default=Path("data"), description="Embedded Redis database and state.")
    rules_dir: Path = Field(default=Path("rules"), description="The watch configuration (YAML).")
    key_prefix: str = Field(default="monitor:", description="Prefix of every Redis key.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    timezone: str = Field(
        default="UTC",
        description="The time zone times are shown in to people (console, email, Slack's "
        "fallback text), an IANA name such as Europe/Berlin; JSON keeps ISO 8601 with offsets.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as key=value text, or one JSON object per line."
    )
    http_host: str = Field(
        default="127.0.0.1", description="Address of the /healthz and /metrics endpoint."
    )
    http_port: int = Field(
        default=9120, ge=0, le=65535, description="Port of /healthz and /metrics; 0 turns it off."
    )
    source_failing_after: int = Field(
        default=3,
        gt=0,
        description="Failed polls in a row before a source raises an operator alert.",
    )
    channel_failing_after: int = Field(
        default=5,
        gt=0,
        description="Failed deliveries in a row before a channel raises an operator alert.",
    )
    seen_ttl: int = Field(default=30 * 86400, gt=0, description="Seconds a seen item is kept.")
    stream_maxlen: int = Field(
        default=100_000, gt=0, description="Approximate cap on the items and outbox streams."
    )
    history: int = Field(
        default=48 * 3600,
        ge=0,
        description="Seconds of recent items kept, compressed, for `rules test --since` "
        "and `rules backfill` (0: none).",
    )
    history_max: int = Field(
        default=50_000, gt=0, description="Approximate cap on the items the history keeps."
    )
    batch_size: int = Field(default=100, gt=0, description="Stream entries read per batch.")
    story_window: int = Field(
        default=7 * 86400, gt=0, description="Seconds within which items can join a story."
    )
    story_semantic: bool = Field(
        default=False,
        description="Blend sentence embeddings into story placement (the semantic extra).",
    )
    reclaim_idle_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds an entry stays with a consumer before another may take it over "
        "(a safety net: a process whose heartbeat stops is taken over within seconds).",
    )
    consumer: str | None = Field(
        default=None,
        description="This process's consumer name in the stream groups (default: host and "
        "process id). A stable name per process slot lets a restart resume its own pending "
        "entries at once.",
    )
    fetch_connect_s: float = Field(default=10.0, gt=0, description="HTTP connect timeout.")
    fetch_read_s: float = Field(default=20.0, gt=0, description="HTTP read timeout.")
    fetch_total_s: float = Field(default=60.0, gt=0, description="Deadline of one poll.")
    fetch_max_bytes: int = Field(
        default=10_000_000, gt=0, description="Cap on a response body, decompressed."
    )
    fetch_per_host: int = Field(default=2, gt=0, description="Concurrent requests per host.")
    fetch_private_redirects: bool = Field(
        default=False,
        description="Follow redirects to more internal addresses (private, loopback, "
        "link-local) than the source's own.",
    )
    process_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Worker processes the daemon runs the process role in (0: in the daemon's "
        "own process); unset: one when the daemon runs another role too, else none.",
    )
    dedup_ttl: int = Field(
        default=30 * 86400, gt=0, description="Seconds fingerprints and stories are kept."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)"
            raise ValueError(message) from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
