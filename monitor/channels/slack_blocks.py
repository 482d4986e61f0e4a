"""Slack messages for alerts and digests: Block Kit built with ``slack_sdk.models.blocks``.

Feed text goes through ``escape_mrkdwn``, and every piece of it has its own budget, so the
limits hold by construction (``monitor/channels/slack.py`` says why and how it is sent).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from monitor.channels.times import shown
from monitor.core.text import highlight_runs, snippets
from monitor.models import Alert, Digest, Severity

__all__ = [
    "FALLBACK_LIMIT",
    "MAX_BLOCKS",
    "MESSAGE_LIMIT",
    "SECTION_LIMIT",
    "SlackMessage",
    "build_digest",
    "build_message",
    "escape_mrkdwn",
    "link_target",
    "one_line",
]

SECTION_LIMIT = 3000  # characters of one section's (or context element's) text


MAX_BLOCKS = 50


MESSAGE_LIMIT = 40_000  # characters of text in one message


FALLBACK_LIMIT = 1000  # our own cap on the plain ``text`` shown in notifications


_TITLE_BUDGET = 600


_SOURCE_BUDGET = 200


_URL_LIMIT = 1500


_SNIPPET_WIDTH = 240


_SNIPPETS = 3


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
    if alert.related:
        related = _clip_plain(alert.related_title or alert.related, 300)
        blocks.append(_context(f"May belong to an earlier story: {related}", "related"))
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
        fallback = shown(when)  # what clients that cannot render the date token show
        parts.append(f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>")
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


def one_line(text: str) -> str:
    """``text`` on one line: control characters and runs of white space become one space."""
    return _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
