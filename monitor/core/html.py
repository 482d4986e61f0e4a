"""HTML to plain text for matching: the words a reader sees, paragraphs kept as line breaks.

Built on the stdlib ``html.parser`` (lenient, no dependency). Invisible elements (scripts,
styles, embedded documents) are dropped, block elements become line breaks, entities are
unescaped and whitespace is tidied. Text without any tag keeps its own line breaks.
"""

from __future__ import annotations

import html as _html
import re
from html.parser import HTMLParser

# Elements whose content a reader never sees as article text.
_DROPPED = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "head"})
# Block elements that end a paragraph (a blank line) or a line.
_PARAGRAPH = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "figure",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
    }
)
_LINE = frozenset({"div", "li", "tr", "figcaption", "dt", "dd", "hr"})
_CELL = frozenset({"td", "th"})

_TAG = re.compile(r"<[A-Za-z/!?]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")
_CRUDE_TAG = re.compile(r"<[^>]*>")


def tidy_whitespace(text: str) -> str:
    """Collapse runs of spaces, strip every line, keep at most one blank line, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class _TextExtractor(HTMLParser):
    """Collects visible text, with newline markers where block elements start and end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropped = 0
        self._pre = 0
        self._pending = 0  # newlines owed before the next text; adjacent blocks share them

    def _break(self, tag: str) -> None:
        if tag == "br":  # consecutive <br>s are how many pages mark a paragraph
            self._pending = min(2, self._pending + 1)
        elif tag in _PARAGRAPH:
            self._pending = 2
        elif tag in _LINE:
            self._pending = max(self._pending, 1)
        elif tag in _CELL:
            self.parts.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped += 1
            return
        if tag == "pre":
            self._pre += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _DROPPED:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self._dropped = max(0, self._dropped - 1)
            return
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        self._break(tag)  # </br> counts as <br>, as in browsers

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if not self._pre:
            data = _ANY_WHITESPACE.sub(" ", data)
        if self._pending:
            if data.isspace():
                return
            self.parts.append("\n" * self._pending)
            self._pending = 0
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment or document; plain text passes through tidied.

    Never raises: malformed markup yields whatever text the lenient parser recovers.
    """
    if not _TAG.search(html):
        return tidy_whitespace(_html.unescape(html))
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = "".join(extractor.parts)
    except Exception:  # the stdlib parser still asserts on a few pathological inputs
        text = _html.unescape(_CRUDE_TAG.sub(" ", html))
    return tidy_whitespace(text)
