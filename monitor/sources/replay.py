"""The replay source: articles saved as files (``seeds/``-style), read back as items.

Text and markdown files hold one article each: the title, the original URL and the date are
recovered from the way such files are usually written (a ``#`` heading or a headline line, an
``Original url:`` line, a dateline). Feed files go through ``parse_feed``; JSON files hold one
item object or a list of them. Ids hash the relative path and the content, so replaying the
same files twice gives the same ids and an edited file comes back as a new item.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.core.html import html_to_text, tidy_whitespace
from monitor.errors import FetchErrorKind, SourceError
from monitor.models import Item
from monitor.sources.base import FetchResult
from monitor.sources.feed import is_json_feed, parse_feed, parse_iso_datetime

__all__ = ["ReplaySource", "item_from_json", "item_from_text", "read_items"]

TITLE_MAX = 120
HEADLINE_MAX = 200
_HEADER_LINES = 15  # dates and repeated headlines are looked for this far into a file

# --- markdown reduced to words ------------------------------------------------------------

_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_REF_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_AUTOLINK = re.compile(r"<(?:https?|ftp|mailto):[^>\s]*>", re.IGNORECASE)
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)")
_EMPHASIS = re.compile(
    r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])|(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)"
)
_CODE = re.compile(r"`+([^`]+)`+")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_RULE = re.compile(r"^\s{0,3}(?:[-*_=]\s*){3,}$")
_ORIGINAL_URL = re.compile(r"^\s*original\s+url\s*:\s*(.*)$", re.IGNORECASE)
_URL = re.compile(r"<((?:https?|ftp)://[^>\s]+)>|((?:https?|ftp)://\S+)", re.IGNORECASE)


def _inline_markdown(line: str) -> str:
    """One line with markdown markup reduced to the words a reader sees."""
    line = _IMAGE.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    line = _REF_LINK.sub(r"\1", line)
    line = _AUTOLINK.sub("", line)
    line = _CODE.sub(r"\1", line)
    line = _STRONG.sub(_inner, line)
    line = _EMPHASIS.sub(_inner, line)
    return _ESCAPE.sub(r"\1", line)


def _inner(match: re.Match[str]) -> str:
    return match.group(1) or match.group(2) or ""


def _plain_line(line: str) -> str:
    """A line as words: heading markers and inline markup removed, spaces tidied."""
    heading = _HEADING.match(line)
    if heading:
        line = heading.group(2)
    if _RULE.match(line) or _REF_DEFINITION.match(line):
        return ""
    return tidy_whitespace(_inline_markdown(line))


# --- titles -------------------------------------------------------------------------------

_CLOSERS = "\"'”’»)]"
_WORD_WITH_LETTER = re.compile(r"\S*[^\W\d_]\S*")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s|$)")
_DOTTED_ABBREVIATION = re.compile(r"(?:^|[\s(\"'“‘])(?:[^\W\d_]\.){2,}$|(?:^|\s)[A-Z]\.$")
# Words whose period does not end a sentence (besides initials and U.S.-style abbreviations).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st gen sen rep gov lt col sgt capt cmdr adm jr sr inc corp co ltd vs "  # noqa: SIM905
    "approx dept jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


def _looks_like_headline(line: str) -> bool:
    """A short line of at least four words that does not end like a sentence or a label."""
    if not line or len(line) > HEADLINE_MAX:
        return False
    if len(_WORD_WITH_LETTER.findall(line)) < 4:
        return False
    return not line.rstrip(_CLOSERS).endswith((".", ",", ":", ";"))


def lead_sentence(text: str) -> str:
    """The first sentence of the first paragraph of ``text``.

    Splits at ``.``/``!``/``?`` followed by space, except before a lowercase word and after
    abbreviations (``U.S.``, initials, ``Mr.``, ``Jan.``).
    """
    paragraph = next((line.strip() for line in text.splitlines() if line.strip()), "")
    for match in _SENTENCE_END.finditer(paragraph):
        end = match.end()
        rest = paragraph[end:].lstrip()
        if rest and rest[0].islower():
            continue
        head = paragraph[: match.start() + 1]
        if match.group().startswith(".") and _is_abbreviation(head) and rest:
            continue
        return paragraph[:end].strip()
    return paragraph


def _is_abbreviation(head: str) -> bool:
    """Whether the period ending ``head`` belongs to an abbreviation rather than a sentence."""
    if _DOTTED_ABBREVIATION.search(head):
        return True
    word = head.rsplit(None, 1)[-1].lstrip("\"'“‘(").rstrip(".").lower()
    return word in _ABBREVIATIONS


def title_from_text(text: str, limit: int = TITLE_MAX) -> str:
    """A title made of the lead sentence, cut at a word boundary to ``limit`` characters with
    ``…`` when it is longer."""
    sentence = lead_sentence(text)
    if sentence.endswith(".") and not sentence.endswith("..") and not _is_abbreviation(sentence):
        sentence = sentence[:-1]
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit - 1]
    if not sentence[limit - 1].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-–—") + "…"


# --- dates --------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month_name>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_TIME = (
    r"(?:,?\s+(?:at\s+)?(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?"
    r"(?:\s*(?P<ampm>[ap])\.?m\b\.?)?)?"
)
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_DATES = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        rf"\b{_MONTH}\s+{_DAY},?\s+(?P<year>\d{{4}})\b{_TIME}",  # January 03, 2026
        rf"\b{_DAY}\s+{_MONTH},?\s+(?P<year>\d{{4}})\b{_TIME}",  # 3 Jan, 2026 17:10
        rf"(?<![\d.])(?P<day>\d{{1,2}})\.(?P<month>\d{{1,2}})\.(?P<year>\d{{4}})(?![\d]|\.\d)"
        rf"{_TIME}",  # 03.01.2026
        r"\b(?P<iso>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
        r"(?:Z|[+-]\d{2}:?\d{2})?)?)(?![\d:])",  # 2026-01-03, 2026-01-03T17:10:00+03:00
    )
)


def find_date(lines: list[str]) -> datetime | None:
    """The first date stated in ``lines`` (earliest in the earliest line), as aware UTC."""
    for line in lines:
        found = sorted(
            (match.start(), index, match)
            for index, pattern in enumerate(_DATES)
            for match in pattern.finditer(line)
        )
        for _, _, match in found:
            value = _date_from_match(match)
            if value is not None:
                return value
    return None


def _date_from_match(match: re.Match[str]) -> datetime | None:
    parts = match.groupdict()
    if parts.get("iso"):
        return parse_iso_datetime(parts["iso"].replace(",", "."))
    month = _MONTHS[parts["month_name"].lower()] if parts.get("month_name") else parts["month"]
    hour = int(parts["hour"] or 0)
    if parts["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if parts["ampm"].lower() == "p" else 0)
    try:
        return datetime(
            int(parts["year"]),
            int(month),
            int(parts["day"]),
            hour,
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None


# --- items --------------------------------------------------------------------------------


def _content_id(source: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"{source}:{digest[:16]}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _original_url(lines: list[str]) -> tuple[str | None, set[int]]:
    """The URL an ``Original url:`` line gives, and the line numbers that carried it."""
    for number, line in enumerate(lines):
        label = _ORIGINAL_URL.match(line)
        if not label:
            continue
        used = {number}
        found = _URL.search(label.group(1))
        if not found:
            following = next(
                ((n, lines[n]) for n in range(number + 1, len(lines)) if lines[n].strip()), None
            )
            if following and (candidate := _URL.fullmatch(following[1].strip())):
                found = candidate
                used.add(following[0])
        if found:
            return _trim_url(found.group(1) or found.group(2)), used
        return None, used
    return None, set()


def _trim_url(url: str) -> str:
    """A bare URL without the sentence punctuation that followed it (balanced ``)`` stay)."""
    url = url.rstrip(".,;:!?")
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1].rstrip(".,;:!?")
    return url


def item_from_text(name: str, content: str, source: str, mtime: datetime) -> Item:
    """One article from a ``.txt``/``.md`` file; ``name`` is its path relative to the replay root.

    Raises ``SourceError`` when the file holds no text.
    """
    lines = content.splitlines()
    url, dropped = _original_url(lines)
    plain = ["" if n in dropped else _plain_line(line) for n, line in enumerate(lines)]
    filled = [n for n, line in enumerate(plain) if line]
    if not filled:
        raise SourceError("no text")
    header = filled[:_HEADER_LINES]

    title_line = next(
        (n for n in filled if (h := _HEADING.match(lines[n])) and len(h.group(1)) == 1), None
    )
    if title_line is None:
        title_line = next((n for n in filled[:3] if _looks_like_headline(plain[n])), None)
    if title_line is not None:
        title = plain[title_line]
        # Pages often print the headline twice (above and below the byline): drop both.
        dropped |= {n for n in header if plain[n] == title} | {title_line}

    text = tidy_whitespace("\n".join(line for n, line in enumerate(plain) if n not in dropped))
    if title_line is None:
        title = title_from_text(text)
    published = find_date([plain[n] for n in header])
    return Item(
        id=_content_id(source, name, content),
        source=source,
        title=title,
        text=text,
        url=url,
        published=published or _utc(mtime),
        guid=name,
        path=name,
    )


def _first_str(obj: Mapping[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` holding a non-empty string (ids may be numbers), stripped."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    names = (v.get("name") if isinstance(v, dict) else v for v in value)
    return tuple(n.strip() for n in names if isinstance(n, str) and n.strip())


def item_from_json(
    obj: Mapping[str, Any], source: str, name: str, index: int, mtime: datetime
) -> Item:
    """One item from a JSON object (item ``index`` of file ``name``); the replay source id wins
    over any ``source`` key. Raises ``SourceError`` for an object that is not an item."""
    guid = _first_str(obj, "id", "guid")
    body = html_to_text(_first_str(obj, "text", "body", "content", "summary") or "")
    title = html_to_text(_first_str(obj, "title") or "") or title_from_text(body)
    if not title:
        raise SourceError(f"item {index}: no title and no text")
    published: datetime | None = _utc(mtime)
    raw_date = next((obj[k] for k in ("published", "date", "date_published") if obj.get(k)), None)
    if isinstance(raw_date, int | float) and not isinstance(raw_date, bool):
        try:  # a Unix timestamp
            published = datetime.fromtimestamp(raw_date, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise SourceError(f"item {index}: invalid date {raw_date!r}") from exc
    elif raw_date is not None:
        published = parse_iso_datetime(raw_date) if isinstance(raw_date, str) else None
        if published is None:
            raise SourceError(f"item {index}: invalid date {raw_date!r}")
    canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return Item(
        id=_content_id(source, name, guid or f"#{index}", canonical),
        source=source,
        title=title,
        text=body,
        url=_first_str(obj, "url", "link"),
        published=published,
        guid=guid or f"{name}#{index}",
        authors=_str_list(obj["authors"] if "authors" in obj else obj.get("author")),
        tags=_str_list(obj.get("tags")),
        language=_first_str(obj, "language"),
        path=name,
    )


# --- files --------------------------------------------------------------------------------

_Reader = Callable[[bytes, str, str, datetime], tuple[list[Item], list[str]]]


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _read_text(
    data: bytes, name: str, source: str, mtime: datetime
) -> tuple[list[Item], list[str]]:
    return [item_from_text(name, _decode(data), source, mtime)], []


def _read_feed(
    data: bytes, name: str, source: str, mtime: datetime
) -> tuple[list[Item], list[str]]:
    return [replace(item, path=name) for item in parse_feed(data, source).items], []


def _read_json(
    data: bytes, name: str, source: str, mtime: datetime
) -> tuple[list[Item], list[str]]:
    try:
        document = json.loads(_decode(data))
    except ValueError as exc:
        raise SourceError(f"invalid JSON: {exc}") from exc
    if is_json_feed(document):
        return _read_feed(data, name, source, mtime)
    if isinstance(document, dict):
        return [item_from_json(document, source, name, 0, mtime)], []
    if not isinstance(document, list):
        raise SourceError("expected a JSON object or a list of objects")
    items: list[Item] = []
    problems: list[str] = []
    for index, obj in enumerate(document):
        try:
            if not isinstance(obj, dict):
                raise SourceError(f"item {index}: not a JSON object")
            items.append(item_from_json(obj, source, name, index, mtime))
        except SourceError as exc:
            problems.append(str(exc))
    return items, problems


READERS: dict[str, _Reader] = {
    ".txt": _read_text,
    ".md": _read_text,
    ".markdown": _read_text,
    ".xml": _read_feed,
    ".rss": _read_feed,
    ".atom": _read_feed,
    ".rdf": _read_feed,
    ".json": _read_json,
}


def _files(root: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """Readable files below ``root`` as sorted (relative posix path, path), hidden ones left
    out, and the folders that could not be listed."""
    found: list[tuple[str, Path]] = []
    problems: list[str] = []

    def unlisted(exc: OSError) -> None:
        problems.append(f"{exc.filename}: {exc.strerror or exc}")

    for folder, dirs, names in os.walk(root, onerror=unlisted):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for file_name in names:
            path = Path(folder, file_name)
            if file_name.startswith(".") or path.suffix.lower() not in READERS:
                continue
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found), problems


def read_items(path: Path, source: str) -> tuple[list[Item], list[str]]:
    """Every item in the file or directory ``path``, and a ``"<path>: <reason>"`` line for each
    file (or JSON item) that was skipped. Blocking; raises ``SourceError`` if ``path`` is missing.
    """
    problems: list[str] = []
    if path.is_dir():
        files, problems = _files(path)
    elif path.is_file():
        files = [(path.name, path)]
    else:
        raise SourceError(f"{path}: no such file or directory")
    items: list[Item] = []
    for name, file in files:
        reader = READERS.get(file.suffix.lower())
        if reader is None:
            problems.append(f"{file}: unsupported file type (expected one of {_suffixes()})")
            continue
        try:
            data = file.read_bytes()
            mtime = datetime.fromtimestamp(file.stat().st_mtime, UTC)
            found, skipped = reader(data, name, source, mtime)
        except OSError as exc:
            problems.append(f"{file}: {exc.strerror or exc}")
            continue
        except SourceError as exc:
            problems.append(f"{file}: {exc}")
            continue
        items.extend(found)
        problems.extend(f"{file}: {reason}" for reason in skipped)
    return items, problems


def _suffixes() -> str:
    return ", ".join(sorted(READERS))


class ReplaySource:
    """A directory or file of saved articles and feeds, read again on every fetch."""

    def __init__(self, id: str, path: Path) -> None:
        self._id = id
        self._path = Path(path)

    @property
    def id(self) -> str:
        return self._id

    @property
    def path(self) -> Path:
        return self._path

    async def fetch(self, state: Mapping[str, str]) -> FetchResult:
        """Read every file again, off the event loop; unreadable files become ``problems``."""
        try:
            items, problems = await asyncio.to_thread(read_items, self._path, self._id)
        except (SourceError, OSError) as exc:
            return FetchResult(self._id, error=str(exc), error_kind=FetchErrorKind.OTHER)
        return FetchResult(self._id, items=tuple(items), problems=tuple(problems))
