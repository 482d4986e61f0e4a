"""HTML to plain text for matching: the words a reader sees, paragraphs kept as line breaks.

Built on selectolax (the lexbor HTML5 parser, in C): feed entries carry HTML in nearly every
field, so turning it into text is the hottest step of parsing and must not walk the tree in
Python. Before parsing, every tag that stands for a line break (a start tag, or an end tag that
is written out: ``<div><p>mis</div>nested`` reads "mis", "nested" on two lines) is followed by
a marker made of form feeds and tabs; the parser keeps such whitespace where it stands, even in
tables, and lexbor's own text extraction then returns the words and the markers in order.
Invisible elements (scripts, styles, embedded documents) are dropped, entities are unescaped and
whitespace is tidied. Text without any tag keeps its own line breaks.
"""

from __future__ import annotations

import html as _html
import re

from selectolax.lexbor import LexborHTMLParser

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
_DROPPED_TAGS = sorted(_DROPPED)

# Markers: a form feed, one tab per kind, a form feed. Form feeds in the input become spaces
# first, so every form feed in the extracted text is ours.
_FF = "\x0c"
_PARAGRAPH_BREAK, _LINE_BREAK, _BR, _CELL_SPACE, _PRE_OPEN, _PRE_CLOSE = range(1, 7)
_KIND = {
    **dict.fromkeys(_PARAGRAPH, _PARAGRAPH_BREAK),
    **dict.fromkeys(_LINE, _LINE_BREAK),
    **dict.fromkeys(_CELL, _CELL_SPACE),
    "br": _BR,
}


def _alternation(words: list[str]) -> str:
    """A case-insensitive regex for any of ``words``, factored by common prefixes: a plain
    ``(?i:p|pre|…)`` retries every alternative at every ``<`` and is several times slower."""
    branches: dict[str, list[str]] = {}
    for word in words:
        if word:
            branches.setdefault(word[0], []).append(word[1:])
    alternatives = [
        (f"[{first}{first.upper()}]" if first.isalpha() else re.escape(first)) + _alternation(rest)
        for first, rest in sorted(branches.items())
    ]
    if not alternatives:
        return ""
    optional = "" in words
    if len(alternatives) == 1 and not optional:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")" + ("?" if optional else "")


_BREAK_TAG = re.compile(r"<(/?)(" + _alternation(sorted(_KIND)) + r")\b[^>]*>")
_MARKER = re.compile(r"\x0c(\t+)\x0c")
_BR_BEFORE = re.compile(r"<[bB][rR]\b[^<>]*>\Z")

_TAG = re.compile(r"<[A-Za-z/!?]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")
_CRUDE_TAG = re.compile(r"<[^>]*>")
# <svg> regions are cut out before parsing: HTML5 lets <b>, <p>… inside an <svg> break out of
# it, but what sits between <svg> and </svg> is never article text.
_SVG_TAG = re.compile(r"<(/?)svg\b[^>]*?(/?)>", re.IGNORECASE)
_SVG_START = re.compile(r"<svg", re.IGNORECASE)


def tidy_whitespace(text: str) -> str:
    """Collapse runs of spaces, strip every line, keep at most one blank line, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _marker(kind: int) -> str:
    return f"{_FF}{chr(9) * kind}{_FF}"


def _mark(match: re.Match[str]) -> str:
    """A break tag followed by its marker; ``<pre>`` and ``</pre>`` get their own."""
    closing, tag = match.group(1), match.group(2).lower()
    if tag == "pre":
        kind = _PRE_CLOSE if closing else _PRE_OPEN
    elif tag == "br" and closing:
        if _BR_BEFORE.search(match.string, max(0, match.start() - 16), match.start()):
            return match.group(0)  # <br></br>, how XHTML's <br/> comes out of feedparser
        kind = _BR  # a lone </br> is a line break, as in browsers
    else:
        kind = _KIND[tag]
    return match.group(0) + _marker(kind)


def _without_svg(html: str) -> str:
    """``html`` with every outermost ``<svg>…</svg>`` removed; an unclosed one runs to the end."""
    parts: list[str] = []
    depth = 0
    kept_until = 0
    for match in _SVG_TAG.finditer(html):
        closing, self_closing = match.group(1), match.group(2)
        if closing:
            if depth:
                depth -= 1
                if not depth:
                    kept_until = match.end()
        elif not self_closing:
            if not depth:
                parts.append(html[kept_until : match.start()])
            depth += 1
        elif not depth:
            parts.append(html[kept_until : match.start()])
            kept_until = match.end()
    if not depth:
        parts.append(html[kept_until:])
    return "".join(parts)


def _layout(marked: str) -> str:
    """Extracted text with markers → text with line breaks; whitespace kept only in ``<pre>``."""
    pieces = _MARKER.split(marked)  # text, tabs, text, tabs, …, text
    parts: list[str] = []
    pending = 0  # newlines owed before the next text; adjacent blocks share them
    pre = 0
    for index, piece in enumerate(pieces):
        if index % 2:
            kind = len(piece)
            if kind == _BR:  # consecutive <br>s are how many pages mark a paragraph
                pending = min(2, pending + 1)
            elif kind == _LINE_BREAK:
                pending = max(pending, 1)
            elif kind == _CELL_SPACE:
                parts.append(" ")
            else:
                pending = 2
                if kind == _PRE_OPEN:
                    pre += 1
                elif kind == _PRE_CLOSE:
                    pre = max(0, pre - 1)
            continue
        if not pre:
            piece = _ANY_WHITESPACE.sub(" ", piece)
        if pending:
            if not piece or piece.isspace():
                continue
            parts.append("\n" * pending)
            pending = 0
        parts.append(piece)
    return "".join(parts)


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment or document; plain text passes through tidied.

    Never raises: malformed markup yields whatever text the HTML5 parser recovers.
    """
    if not _TAG.search(html):
        return tidy_whitespace(_html.unescape(html))
    try:
        if _SVG_START.search(html):
            html = _without_svg(html)
        if _FF in html:
            html = html.replace(_FF, " ")
        tree = LexborHTMLParser(_BREAK_TAG.sub(_mark, html))
        tree.strip_tags(_DROPPED_TAGS, recursive=True)
        root = tree.root
        text = _layout(root.text(deep=True)) if root is not None else ""
    except Exception:  # a parser failure must not lose the words
        text = _html.unescape(_CRUDE_TAG.sub(" ", html))
    return tidy_whitespace(text)
