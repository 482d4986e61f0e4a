"""What an HTTP source keeps between polls (the URL it moved to, ETag, Last-Modified) and the
result of a fetch that left nothing to parse (an error, or a 304)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.http import Download
from monitor.sources.base import FetchResult

__all__ = ["download_fields", "next_state", "resume_state", "unparsed_result"]


def resume_state(
    state: Mapping[str, str], configured_url: str
) -> tuple[str, str | None, str | None]:
    """Where to poll and which validators to send: ``(url, etag, last_modified)``.

    The stored state is ignored when it was recorded for another configured URL (the user
    edited the source): a stale permanent redirect or ETag must not outlive the edit.
    """
    if state.get("configured_url", configured_url) != configured_url:
        return configured_url, None, None
    url = state.get("url") or configured_url
    return url, state.get("etag") or None, state.get("last_modified") or None


def next_state(download: Download, state: Mapping[str, str], configured_url: str) -> dict[str, str]:
    """The HTTP part of the state to keep after a successful fetch (an empty value clears a key).

    A 304 keeps the validators it confirmed unless it sent new ones.
    """
    url, etag, last_modified = resume_state(state, configured_url)
    if download.not_modified:
        etag = download.etag or etag
        last_modified = download.last_modified or last_modified
    else:
        etag, last_modified = download.etag, download.last_modified
    return {
        "configured_url": configured_url,
        "url": download.moved_to or (url if url != configured_url else ""),
        "etag": etag or "",
        "last_modified": last_modified or "",
    }


def download_fields(download: Download) -> dict[str, Any]:
    """What every HTTP source reports about its download in its ``FetchResult``."""
    return {
        "status": download.status,
        "retry_after_s": download.retry_after_s,
        "max_age_s": download.max_age_s,
        "bytes_read": len(download.body),
    }


def unparsed_result(
    source: str, download: Download, state: Mapping[str, str], kept: Mapping[str, str]
) -> FetchResult | None:
    """The result when there is nothing to parse: a failed download keeps the old ``state``,
    a 304 keeps ``kept`` (the confirmed validators); None when there is a body to parse."""
    if download.error is not None:
        return FetchResult(
            source,
            error=download.error,
            error_kind=download.error_kind,
            state=dict(state),
            elapsed_s=download.elapsed_s,
            **download_fields(download),
        )
    if download.not_modified:
        return FetchResult(
            source,
            state=dict(kept),
            not_modified=True,
            elapsed_s=download.elapsed_s,
            **download_fields(download),
        )
    return None
