"""feedparser, safely: a feed's bytes decoded as feedparser would, entity declarations and
DOCTYPE internal subsets removed, impossible character references and unusable encoding
declarations repaired, then parsed with the sanitizer and URI rewriting off."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import feedparser
import feedparser.encodings

from monitor.errors import SourceError

__all__ = ["safe_parse"]


_SELF_DESCRIBING = re.compile(rb"\s*<\?xml[^>]*\bencoding\s*=", re.IGNORECASE)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_ELEMENT = re.compile(rb"<\w")
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DOCTYPE = b"<!doctype"


def safe_parse(data: bytes, charset: str | None) -> tuple[Any, str | None]:
    """feedparser's result for ``data`` and why it was malformed (None when it was not).

    The document is decoded to UTF-8 the way feedparser would (so what is checked for entity
    declarations is exactly what its XML parser will see), stripped of any DOCTYPE internal
    subset, then parsed with the sanitizer and URI rewriting off.
    """
    headers: dict[str, str] = {}
    head = data[:1024]
    if charset and not (
        head.startswith(_BOMS) or b"\x00" in head[:4] or _SELF_DESCRIBING.match(head)
    ):
        headers["content-type"] = f"application/xml; charset={charset}"
    decoding: dict[str, Any] = {}
    try:
        utf8 = feedparser.encodings.convert_to_utf8(headers, data, decoding)
    except (ValueError, LookupError) as exc:  # an encoding name with a NUL or bad bytes in it
        utf8 = _as_utf8(data)
        decoding = {"bozo": True, "bozo_exception": f"unusable encoding declaration ({exc})"}
    safe, removed = _without_internal_subset(_CHARREF.sub(_valid_charref, utf8))
    # A file-like object: feedparser would try to open or download a str or bytes argument.
    parsed = feedparser.parse(
        io.BytesIO(safe),
        response_headers=(
            {"content-type": "application/xml; charset=utf-8"} if decoding.get("encoding") else {}
        ),
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    reasons = [_bozo_message(decoding), removed, _bozo_message(parsed)]
    return parsed, "; ".join(r for r in reasons if r) or None


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,16})|([0-9]{1,20}));")
_DECLARED_ENCODING = re.compile(rb"(<\?xml[^>]*?)\s+encoding\s*=\s*(['\"])[^'\"]*\2", re.IGNORECASE)


def _valid_charref(match: re.Match[bytes]) -> bytes:
    """A numeric character reference to a character that cannot exist (beyond U+10FFFF, a
    surrogate, NUL) becomes U+FFFD; the parser would raise on it."""
    hexa, decimal = match.groups()
    code = int(hexa, 16) if hexa else int(decimal)
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return match.group()
    return b"&#xFFFD;"


def _as_utf8(data: bytes) -> bytes:
    """A document whose encoding declaration cannot be used, read as UTF-8 (bad bytes replaced)
    with that declaration removed."""
    text = data.decode("utf-8", errors="replace").encode("utf-8")
    return _DECLARED_ENCODING.sub(rb"\1", text.replace(b"\x00", b""), count=1)


def _without_internal_subset(data: bytes) -> tuple[bytes, str | None]:
    """``data`` with the internal subset of its DOCTYPE removed, and a note when it had one.

    Entity declarations live only there; without them no entity can be expanded, external or
    nested. Raises ``SourceError`` when the prolog cannot be read, or when an ENTITY
    declaration is left anywhere feedparser would still pick it up.
    """
    prolog_end, subsets = _prolog(data)
    if subsets:
        kept: list[bytes] = []
        start = 0
        for begin, end in subsets:
            kept.append(data[start:begin])
            start = end
        kept.append(data[start:])
        data = b"".join(kept)
        prolog_end -= sum(end - begin for begin, end in subsets)
    # feedparser takes its DOCTYPE and entities from everything before the first "<\w".
    element = _ELEMENT.search(data)
    head_end = max(prolog_end, element.start() if element else len(data))
    if _ENTITY.search(data, 0, head_end):
        raise SourceError("refused: an XML ENTITY declaration outside a DOCTYPE internal subset")
    if not subsets:
        return data, None
    return data, "DOCTYPE internal subset removed: XML entities are never expanded"


def _prolog(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Where the prolog ends, and the ``[…]`` spans of DOCTYPE internal subsets within it."""
    subsets: list[tuple[int, int]] = []
    at = 0
    size = len(data)
    while True:
        if data.startswith(b"\xef\xbb\xbf", at):
            at += 3
        while at < size and data[at] in b" \t\r\n":
            at += 1
        if data.startswith(b"<?", at):
            at = _past(data, b"?>", at + 2)
        elif data.startswith(b"<!--", at):
            at = _past(data, b"-->", at + 4)
        elif data[at : at + len(_DOCTYPE)].lower() == _DOCTYPE:
            at, subset = _doctype(data, at + len(_DOCTYPE))
            if subset is not None:
                subsets.append(subset)
        else:
            return at, subsets


def _past(data: bytes, end: bytes, at: int) -> int:
    found = data.find(end, at)
    if found < 0:
        raise SourceError(f"unterminated markup in the XML prolog (no {end.decode()!r})")
    return found + len(end)


def _doctype(data: bytes, at: int) -> tuple[int, tuple[int, int] | None]:
    """The end of a DOCTYPE declaration and the span of its internal subset, if it has one."""
    subset: tuple[int, int] | None = None
    size = len(data)
    while at < size:
        char = data[at : at + 1]
        if char in (b'"', b"'"):
            at = _past(data, char, at + 1)
        elif char == b">":
            return at + 1, subset
        elif char == b"[" and subset is None:
            begin = at
            at += 1
            while at < size and data[at : at + 1] != b"]":
                char = data[at : at + 1]
                if char in (b'"', b"'"):
                    at = _past(data, char, at + 1)
                elif data.startswith(b"<!--", at):
                    at = _past(data, b"-->", at + 4)
                elif data.startswith(b"<?", at):
                    at = _past(data, b"?>", at + 2)
                else:
                    at += 1
            if at >= size:
                break
            at += 1
            subset = (begin, at)
        else:
            at += 1
    raise SourceError("unterminated DOCTYPE declaration")


def _bozo_message(parsed: Mapping[str, Any]) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "malformed feed"
    return str(exc) or type(exc).__name__
