"""An item's words, found once: everything that reads them reads this.

One pass of the tokenizer over the title and one over the plain text yield the tokens with their
offsets; the text's lines are then ranges of those tokens. Boilerplate removal (link-only lines,
"Read more", appeals at the end, lines a source keeps repeating, keyed by their words), the
language guess, the stream's document counts, the fingerprint, the story vector and the matcher
all consume the same tokens: an article is never tokenized twice.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import xxhash

from monitor.core.text import Tokens, tokenize

MIN_KEYED = 12  # a line's words must be this long (in characters) for its repeats to be counted

_LINK_ONLY = re.compile(r"^\W*(?:https?://\S+|www\.\S+|<https?://[^>]+>|\[[^\]]*\]\([^)]*\))\W*$")
_BOILERPLATE_LINE = re.compile(
    r"^\W*(?:read (?:more|the full|also|next)"
    r"|related(?: articles?| stor(?:y|ies)| coverage| content| links?| reading)?\s*:"
    r"|see also|more on this|also read|recommended|advertisement|share (?:this|on)"
    r"|follow us|click here|sign up|subscribe|copyright|©|all rights reserved"
    r"|original url|photo:|image:|source:|remind me later|tags:"
    r"|the post .{1,300} appeared first on)",
    re.IGNORECASE,
)
_APPEAL = re.compile(
    r"\b(?:donat\w*|subscri\w*|support (?:us|our|independent)|contribution|newsletter"
    r"|paywall|become a (?:member|patron)|dear readers?|independent journalism|a message from)\b",
    re.IGNORECASE,
)
APPEAL_FROM = 0.6  # an appeal past this share of the lines ends the article


@dataclass(frozen=True, slots=True)
class Line:
    """A non-empty line of the text: where it stands (stripped), its tokens, its position."""

    index: int  # among all the text's lines, empty ones included
    start: int
    end: int
    first: int  # tokens [first, stop) of the text
    stop: int


@dataclass(frozen=True)
class Analysis:
    """The title and plain text of one item with their tokens and lines."""

    title: str
    text: str
    title_tokens: Tokens
    tokens: Tokens
    lines: tuple[Line, ...]
    line_count: int

    def line(self, line: Line) -> str:
        return self.text[line.start : line.end]

    def words(self) -> list[str]:
        """The title's words, then the text's."""
        return [*self.title_tokens.words, *self.tokens.words]

    @cached_property
    def keyed_lines(self) -> list[tuple[Line, str]]:
        """The substantial lines with short, stable keys (a hash of their words), for counting
        repeats across a source's items."""
        keyed = []
        words = self.tokens.words
        for line in self.lines:
            key = line_key(words[line.first : line.stop])
            if key is not None:
                keyed.append((line, key))
        return keyed

    def kept(self, repeated: Collection[str] = ()) -> list[Line]:
        """The lines that are the article: not link-only, not "Read more" and the like, not a
        line whose key is in ``repeated`` (the source keeps repeating it), and none from an
        appeal in the last part of the text on (the article has ended there)."""
        keys = {line.index: key for line, key in self.keyed_lines} if repeated else {}
        kept: list[Line] = []
        for line in self.lines:
            shown = self.line(line)
            if _LINK_ONLY.match(shown) or _BOILERPLATE_LINE.match(shown):
                continue
            if keys.get(line.index) in repeated:
                continue
            if _APPEAL.search(shown) and line.index >= self.line_count * APPEAL_FROM:
                break
            kept.append(line)
        return kept

    def tokens_of(self, lines: Iterable[Line]) -> Tokens:
        """The text's tokens in ``lines`` (offsets still into ``text``)."""
        lines = list(lines)
        if len(lines) == len(self.lines):
            return self.tokens
        words: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for line in lines:
            words += self.tokens.words[line.first : line.stop]
            starts += self.tokens.starts[line.first : line.stop]
            ends += self.tokens.ends[line.first : line.stop]
        return Tokens(tuple(words), tuple(starts), tuple(ends))

    def joined(self, lines: Iterable[Line]) -> str:
        """The text of ``lines``, one per line."""
        return "\n".join(self.line(line) for line in lines)


def line_key(words: Sequence[str]) -> str | None:
    """The key a line's repeats are counted under (a hash of its words); None for a line too
    short to count."""
    joined = " ".join(words)
    return xxhash.xxh3_64_hexdigest(joined.encode()) if len(joined) >= MIN_KEYED else None


def analyse(title: str, text: str) -> Analysis:
    """Tokenize ``title`` and ``text`` (plain text) once and find the text's lines."""
    tokens = tokenize(text)
    lines: list[Line] = []
    position = 0
    count = 0
    for count, raw in enumerate(text.splitlines(keepends=True), start=1):
        body = raw.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        stripped = body.strip()
        if stripped:
            start = position + len(body) - len(body.lstrip())
            end = start + len(stripped)
            lines.append(
                Line(
                    count - 1,
                    start,
                    end,
                    bisect_left(tokens.starts, start),
                    bisect_left(tokens.starts, end),
                )
            )
        position += len(raw)
    return Analysis(title, text, tokenize(title), tokens, tuple(lines), count)


def strip_boilerplate(text: str, repeated: Iterable[str] = ()) -> str:
    """The article without its boilerplate (see ``Analysis.kept``); ``repeated``: lines the
    source keeps repeating."""
    analysis = analyse("", text)
    keys = {key for line in repeated if (key := line_key(tokenize(line).words)) is not None}
    return analysis.joined(analysis.kept(keys))


def keyed_lines(text: str) -> list[tuple[str, str]]:
    """A text's substantial lines with their keys (see ``Analysis.keyed_lines``)."""
    analysis = analyse("", text)
    return [(analysis.line(line), key) for line, key in analysis.keyed_lines]
