"""HTML to plain text for matching: the words a reader sees, paragraphs kept as line breaks.

Built on selectolax (the lexbor HTML5 parser, in C): feed entries carry HTML in nearly every
field, and turning it into text is the hottest step of parsing, so it must not be done in
Python. Invisible elements (scripts, styles, embedded documents) are dropped, block elements
become line breaks, entities are unescaped and whitespace is tidied. Text without any tag keeps
its own line breaks.
"""

from __future__ import annotations

import html as _html
import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

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
# Elements that never have content or an end tag: their break counts once, not twice.
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)
_TEXT = "-text"

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


class _Text:
    """Visible text collected in document order, with the line breaks blocks stand for."""

    __slots__ = ("_pending", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._pending = 0  # newlines owed before the next text; adjacent blocks share them

    def boundary(self, tag: str) -> None:
        """An element starts or ends here."""
        if tag == "br":  # consecutive <br>s are how many pages mark a paragraph
            self._pending = min(2, self._pending + 1)
        elif tag in _PARAGRAPH:
            self._pending = 2
        elif tag in _LINE:
            self._pending = max(self._pending, 1)
        elif tag in _CELL:
            self.parts.append(" ")

    def data(self, text: str, pre: bool) -> None:
        if not pre:
            text = _ANY_WHITESPACE.sub(" ", text)
        if self._pending:
            if text.isspace() or not text:
                return
            self.parts.append("\n" * self._pending)
            self._pending = 0
        self.parts.append(text)


def _collect(root: LexborNode, out: _Text) -> None:
    """Walk the tree under ``root`` depth first, without recursion (documents nest deeply)."""
    node = root.child
    ends: list[str] = []  # the tags of the open elements, innermost last
    pre = 0
    while node is not None:
        tag = node.tag or ""
        descend = False
        if tag == _TEXT:
            out.data(node.text_content or "", pre > 0)
        elif node.is_element_node and tag not in _DROPPED:
            out.boundary(tag)
            if tag not in _VOID:
                child = node.child
                if child is not None:
                    ends.append(tag)
                    pre += tag == "pre"
                    node = child
                    descend = True
                else:
                    out.boundary(tag)
        if descend:
            continue
        following = node.next
        while following is None and ends:
            node = node.parent
            if node is None:
                return
            closed = ends.pop()
            pre -= closed == "pre"
            out.boundary(closed)
            following = node.next
        node = following


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment or document; plain text passes through tidied.

    Never raises: malformed markup yields whatever text the HTML5 parser recovers.
    """
    if not _TAG.search(html):
        return tidy_whitespace(_html.unescape(html))
    try:
        tree = LexborHTMLParser(html)
        out = _Text()
        if tree.root is not None:
            _collect(tree.root, out)
        text = "".join(out.parts)
    except Exception:  # a parser failure must not lose the words
        text = _html.unescape(_CRUDE_TAG.sub(" ", html))
    return tidy_whitespace(text)
