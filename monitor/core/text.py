"""One normalization for rules and articles alike, with offsets back into the original text.

``fold`` maps every character of a text (NFKC, case fold, diacritics removed, typographic quotes
and dashes made plain) and remembers which original character each folded one came from;
``tokenize`` splits the folded text into words of letters and digits, joins dotted abbreviations
(``U.S.`` → ``us``) and drops the possessive ``'s``. Each token keeps its start and end offset in
the original text, so a match can be highlighted exactly where it was found.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat
from typing import NamedTuple

_SPECIAL = {
    **dict.fromkeys("‘’‚‛′ʼʹ`´", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−⁃﹘﹣", "-"),
    # Letters that carry their mark in the base character and so survive NFD unchanged.
    "ø": "o",
    "Ø": "o",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ħ": "h",
    "Ħ": "h",
    "ı": "i",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "þ": "th",
    "Þ": "th",
}

# Accents are the marks of these blocks (combining diacritics and their extensions, Arabic
# vowel marks); the vowel signs and viramas of Indic, Thai and other scripts are parts of
# letters and are kept.
_DIACRITICS = (
    (0x0300, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
    (0x064B, 0x065F),  # Arabic short vowels and hamza marks: "أ" is searched as "ا"
    (0x0670, 0x0670),
)


def _is_diacritic(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _DIACRITICS)


def _marks() -> str:
    """A regex class body of every combining mark in the Basic Multilingual Plane."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x0300, 0x10000):
        if unicodedata.category(chr(code)) in ("Mn", "Mc", "Me"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)


# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, kana and Han. Each of
# their characters (with the marks that belong to it) is a token of its own, so a rule's word is
# matched as the run of characters it is, wherever it stands in the text ("台湾" in
# "台湾地区发生强烈地震"), through the same automaton as any phrase.
UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
)

# Words: runs of letters and digits (with the marks that belong to them); dotted single letters
# (U.S., u.s.a) join into one word; a character of an unspaced script is a word by itself.
# (The lookahead only says what both forms of an abbreviation begin with: most words fail it
# at their second character, and the engine then tries the next alternative at once.)
_TOKEN = re.compile(
    r"(?=[^\W\d_]\.[^\W\d_])"
    r"(?P<abbr>(?:[^\W\d_]\.){2,}(?![^\W_])|[^\W\d_](?:\.[^\W\d_])+(?![^\W_]))"
    rf"|(?P<unspaced>[{UNSPACED}][{_marks()}]*)"
    rf"|[^\W_{UNSPACED}]+(?:[{_marks()}]+[^\W_{UNSPACED}]*)*"
)

# Arabic writes the article and one-letter conjunctions and prepositions onto the word
# ("والبيت", "بغزة", "لبنان"): they are taken off, again and again, while three letters remain.
# Rules and texts go through the same steps, so a word and any form of it with these prefixes
# become one token ("بيروت", "وبيروت" and "البيروت" all "يروت"); the token's offsets still cover
# the whole word as written.
_ARABIC_WORD = re.compile(r"[\u0620-\u064a]+")
_ARABIC_ONE = frozenset("وفبكل")
ARABIC_STEM = 3  # letters that must remain after a prefix is taken off


def arabic_base(word: str) -> str:
    """``word`` without the article and one-letter prefixes (see above)."""
    while True:
        if word.startswith("ال") and len(word) - 2 >= ARABIC_STEM:
            word = word[2:]
        elif word[:1] in _ARABIC_ONE and len(word) - 1 >= ARABIC_STEM:
            word = word[1:]
        else:
            return word


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@lru_cache(maxsize=1 << 16)
def fold_char(char: str) -> str:
    """The folded form of one character: may be empty (an accent, an invisible format character
    such as a soft hyphen) or longer (``ß`` → ``ss``, ``½`` → ``1⁄2``)."""
    special = _SPECIAL.get(char)
    if special is not None:
        return special
    if unicodedata.category(char) == "Cf":
        return ""
    folded = unicodedata.normalize("NFKC", char).casefold()
    decomposed = unicodedata.normalize("NFD", folded)
    plain = "".join(c for c in decomposed if not _is_diacritic(c))
    return unicodedata.normalize("NFC", "".join(_SPECIAL.get(c, c) for c in plain))


@dataclass(frozen=True, slots=True)
class Folded:
    """A folded text and, for each of its characters, the index of the original character."""

    text: str
    offsets: tuple[int, ...] | None  # None: identical positions (ASCII input)
    original_length: int

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a folded ``[start, end)`` span back to the original text."""
        if self.offsets is None:
            return start, end
        if start >= end:
            pos = self.offsets[start] if start < len(self.offsets) else self.original_length
            return pos, pos
        # Characters that folded to nothing (combining marks) after the last one belong to it.
        nxt = self.offsets[end] if end < len(self.offsets) else self.original_length
        return self.offsets[start], max(self.offsets[end - 1] + 1, nxt)


def fold(text: str) -> Folded:
    """Fold ``text`` character by character, keeping the way back to original offsets."""
    if text.isascii():
        return Folded(text.lower(), None, len(text))
    parts: list[str] = []
    offsets: list[int] = []
    done = 0
    for match in _NON_ASCII.finditer(text):  # ASCII runs are copied whole, in C
        index = match.start()
        if index > done:
            parts.append(text[done:index].lower())
            offsets.extend(range(done, index))
        folded = fold_char(match.group())
        parts.append(folded)
        offsets.extend([index] * len(folded))
        done = index + 1
    if done < len(text):
        parts.append(text[done:].lower())
        offsets.extend(range(done, len(text)))
    return Folded("".join(parts), tuple(offsets), len(text))


class Token(NamedTuple):
    """A normalized word and where it stands in the original text."""

    word: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Tokens:
    """The tokens of one text, as parallel tuples (cheap to build, cheap to scan)."""

    words: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, index: int) -> Token:
        return Token(self.words[index], self.starts[index], self.ends[index])

    def as_list(self) -> list[Token]:
        return [Token(w, s, e) for w, s, e in zip(self.words, self.starts, self.ends, strict=True)]


_GROUP = re.Match.group
_START = re.Match.start
_END = re.Match.end
_KIND = operator.attrgetter("lastgroup")
_ARABIC_LETTER = re.compile(r"[\u0620-\u064a]")


def tokenize(text: str) -> Tokens:
    """Split ``text`` into normalized tokens with offsets into ``text`` itself."""
    folded = fold(text)
    if _ARABIC_LETTER.search(folded.text) is None:
        found = _tokens_in_bulk(folded)
        if found is not None:
            return found
    return _tokens_one_by_one(folded)


def _tokens_in_bulk(folded: Folded) -> Tokens | None:
    """The tokens of a folded text without Arabic letters, each step over all matches at once
    (in C: a text's few hundred words cost no Python loop); None when a character folded into
    two tokens (``¼``), which ``_tokens_one_by_one`` joins."""
    ftext = folded.text
    matches = list(_TOKEN.finditer(ftext))
    words = list(map(_GROUP, matches))
    fstarts = list(map(_START, matches))
    fends = list(map(_END, matches))
    if "abbr" in map(_KIND, matches):
        words = [
            w.replace(".", "") if m.lastgroup == "abbr" else w
            for w, m in zip(words, matches, strict=True)
        ]
    if "s" in words:  # possessive 's: "Russia's" is the token "russia", "U.S.'s" is "us"
        keep = [
            not (w == "s" and s >= 2 and ftext[s - 1] == "'" and _ends_word(ftext[s - 2]))
            for w, s in zip(words, fstarts, strict=True)
        ]
        words = list(compress(words, keep))
        fstarts = list(compress(fstarts, keep))
        fends = list(compress(fends, keep))
    offsets = folded.offsets
    if offsets is None:  # ASCII: folded offsets are the original ones
        return Tokens(tuple(words), tuple(fstarts), tuple(fends))
    ahead = (*offsets, folded.original_length)
    starts = list(map(ahead.__getitem__, fstarts))
    # ``Folded.span``: a token ends after its last character and the marks that folded away.
    last = map(ahead.__getitem__, map(operator.sub, fends, repeat(1)))
    ends = list(map(max, map(operator.add, last, repeat(1)), map(ahead.__getitem__, fends)))
    if any(map(operator.lt, starts[1:], ends)):
        return None
    return Tokens(tuple(words), tuple(starts), tuple(ends))


def _tokens_one_by_one(folded: Folded) -> Tokens:
    """``tokenize``, a match at a time."""
    ftext = folded.text
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    same = folded.offsets is None  # ASCII: folded offsets are the original ones
    span = folded.span
    for match in _TOKEN.finditer(ftext):
        fstart, fend = match.span()
        word = match.group()
        if match.lastgroup == "abbr":
            word = word.replace(".", "")
        elif "\u0620" <= word[0] <= "\u064a" and _ARABIC_WORD.fullmatch(word):
            word = arabic_base(word)
        elif (
            word == "s"
            and fstart >= 2
            and ftext[fstart - 1] == "'"
            and _ends_word(ftext[fstart - 2])
        ):
            continue  # possessive 's: "Russia's" is the token "russia", "U.S.'s" is "us"
        if same:
            words.append(word)
            starts.append(fstart)
            ends.append(fend)
            continue
        start, end = span(fstart, fend)
        if ends and start < ends[-1]:
            # One character folded into two tokens ("¼" is "1⁄4"): they are one token of it.
            words[-1] += word
            ends[-1] = max(ends[-1], end)
            continue
        words.append(word)
        starts.append(start)
        ends.append(end)
    return Tokens(tuple(words), tuple(starts), tuple(ends))


@dataclass(frozen=True, slots=True)
class Snippet:
    """A piece of a text around matches; ``highlights`` index ``text`` itself."""

    text: str
    highlights: tuple[tuple[int, int], ...]
    start: int  # where the snippet begins in the full text
    cut_before: bool
    cut_after: bool


def snippets(
    text: str, spans: Sequence[tuple[int, int]], *, width: int = 240, limit: int = 3
) -> list[Snippet]:
    """Up to ``limit`` pieces of ``text`` about ``width`` characters long, each around matched
    ``spans`` (offsets into ``text``), cut at word boundaries; overlapping windows merge. With no
    spans, the beginning of the text."""
    ordered = sorted({(s, e) for s, e in spans if 0 <= s < e <= len(text)})
    if not ordered:
        ordered = [(0, 0)]
    windows: list[list[int]] = []
    for start, end in ordered:
        pad = max(0, (width - (end - start)) // 2)
        low, high = max(0, start - pad), min(len(text), end + pad)
        if windows and low <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], high)
        elif len(windows) < limit:
            windows.append([low, high])
    out = []
    for low, high in windows:
        inside = [(s, e) for s, e in ordered if s < high and e > low] or [(low, low)]
        if low > 0:  # start on a word boundary, before the first match
            space = text.find(" ", low, inside[0][0])
            low = space + 1 if space >= 0 else low
        if high < len(text):  # end on a word boundary, after the last match
            space = text.rfind(" ", max(e for _, e in inside), high)
            high = space if space >= 0 else high
        marks = tuple((max(s, low) - low, min(e, high) - low) for s, e in inside if e > s)
        out.append(Snippet(text[low:high], marks, low, low > 0, high < len(text)))
    return out


def highlight_runs(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, highlighted) runs; spans are clipped to the text and merge
    where they overlap or touch. Every channel marks matched terms with this."""
    merged: list[list[int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    runs: list[tuple[str, bool]] = []
    position = 0
    for start, end in merged:
        if start > position:
            runs.append((text[position:start], False))
        runs.append((text[start:end], True))
        position = end
    if position < len(text):
        runs.append((text[position:], False))
    return runs


def _ends_word(char: str) -> bool:
    return char.isalnum() or char == "."


def normalize(text: str) -> str:
    """The normalized words of ``text`` joined by single spaces."""
    return " ".join(tokenize(text).words)
