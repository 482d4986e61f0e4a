"""The query language: text → expression tree (docs/rules.md).

Grammar, loosest binding first::

    query   := or ;  or := and ("OR" and)* ;  and := near (["AND"] near)*
    near    := unary ("NEAR/n" unary)* ;  unary := ("NOT" | "-") unary | primary
    primary := "(" or ")" | FIELD ":" primary | "phrase" | word | word* | @entity | /regex/

Operators are upper case; ``and``/``or``/``not`` in lower case are ordinary words. Every leaf is
normalized with the same function as article text (``core.text``), so ``"U.S. custody"`` and
``rodríguez`` match what a reader would expect. Errors carry the character offset in the query.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TypeAlias

import re2

from monitor.core.text import fold_char, tokenize
from monitor.errors import QuerySyntaxError
from monitor.models import FIELDS

Fields: TypeAlias = frozenset[str] | None  # None: the rule's default fields


@dataclass(frozen=True, slots=True)
class Term:
    """Consecutive normalized words; ``prefix`` lets the last word match any word it starts."""

    words: tuple[str, ...]
    prefix: bool = False
    fields: Fields = None
    text: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Entity:
    """Any alias of a named entity (``@id``); each alias is a phrase."""

    id: str
    terms: tuple[Term, ...]
    fields: Fields = None


@dataclass(frozen=True, slots=True)
class Regex:
    """An RE2 expression over the folded text (lower case, no accents, punctuation kept)."""

    pattern: str
    fields: Fields = None


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    """Both sides in one field with at most ``within`` tokens between them, in either order."""

    left: Node
    right: Node
    within: int


Node: TypeAlias = Term | Entity | Regex | And | Or | Not | Near
Leaf: TypeAlias = Term | Entity | Regex

MIN_PREFIX = 2


# --- leaves -------------------------------------------------------------------------------------


def make_term(text: str, offset: int = 0, *, fields: Fields = None) -> Term:
    """A word, phrase or ``prefix*`` as written by a user, normalized like article text."""
    raw = text.strip()
    prefix = raw.endswith("*")
    body = raw.rstrip("*")
    if "*" in body:
        raise QuerySyntaxError(f"'{raw}': a wildcard may only end a word", offset)
    words = tokenize(body).words
    if not words:
        what = "empty phrase" if not raw else f"'{raw}' has no letters or digits to match"
        raise QuerySyntaxError(what, offset)
    if prefix and (len(words[-1]) < MIN_PREFIX or body != body.rstrip()):
        raise QuerySyntaxError(
            f"'{raw}': a prefix needs at least {MIN_PREFIX} letters before the '*'", offset
        )
    return Term(words, prefix, fields, raw)


def make_entity(
    name: str, entities: Mapping[str, Sequence[str]], offset: int = 0, *, fields: Fields = None
) -> Entity:
    """``@name`` resolved against the configured entities (each alias becomes a phrase)."""
    if not name:
        raise QuerySyntaxError("an entity name must follow '@'", offset)
    aliases = entities.get(name)
    if aliases is None:
        close = difflib.get_close_matches(name, list(entities), n=1)
        hint = f" (did you mean @{close[0]}?)" if close else ""
        raise QuerySyntaxError(f"unknown entity @{name}{hint}", offset)
    terms = tuple(dict.fromkeys(make_term(alias, offset) for alias in aliases))
    return Entity(name, terms, fields)


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> re2._Regexp:
    """Compile for the folded text: case-insensitive, non-ASCII letters folded like the text."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    folded = "".join(c if c.isascii() else fold_char(c) for c in pattern)
    return re2.compile(folded, options=options)


def make_regex(pattern: str, offset: int = 0, *, fields: Fields = None) -> Regex:
    if not pattern:
        raise QuerySyntaxError("empty regular expression", offset)
    try:
        compile_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise QuerySyntaxError(
            f"invalid regular expression /{pattern}/: {reason}", offset
        ) from None
    return Regex(pattern, fields)


def make_near(left: Node, right: Node, within: int, offset: int = 0) -> Near:
    for side in (left, right):
        if not is_positional(side):
            raise QuerySyntaxError(
                f"NEAR/{within} needs words, phrases, entities or OR-groups of them on both sides",
                offset,
            )
    return Near(left, right, within)


def is_positional(node: Node) -> bool:
    """Whether a node has positions in the text (so it can stand beside NEAR)."""
    if isinstance(node, Term | Entity | Regex | Near):
        return True
    if isinstance(node, Or):
        return all(is_positional(child) for child in node.children)
    return False


def make_and(children: Iterable[Node]) -> Node:
    return _flatten(And, children)


def make_or(children: Iterable[Node]) -> Node:
    return _flatten(Or, children)


def _flatten(kind: type[And] | type[Or], children: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def restrict(node: Node, fields: frozenset[str]) -> Node:
    """Apply a ``field:`` prefix to every leaf below ``node`` that has no field of its own."""
    if isinstance(node, Term | Entity | Regex):
        return node if node.fields is not None else replace(node, fields=fields)
    if isinstance(node, And | Or):
        return type(node)(tuple(restrict(child, fields) for child in node.children))
    if isinstance(node, Not):
        return Not(restrict(node.child, fields))
    return Near(restrict(node.left, fields), restrict(node.right, fields), node.within)


def leaves(node: Node) -> Iterable[Leaf]:
    if isinstance(node, Term | Entity | Regex):
        yield node
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, Not):
        yield from leaves(node.child)
    else:
        yield from leaves(node.left)
        yield from leaves(node.right)


# --- lexer --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # LPAREN RPAREN AND OR NOT MINUS NEAR FIELD PHRASE WORD ENTITY REGEX END
    value: str
    offset: int
    within: int = 0


_NEAR = re.compile(r"NEAR(?:/(\S*))?")
_FIELD = re.compile(r"([A-Za-z]+):(?=[^\s)])(?!//)")  # not "http://": a URL is a word
_SPECIAL_CHARS = set('()"')


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c == "(":
            toks.append(_Tok("LPAREN", c, i))
            i += 1
        elif c == ")":
            toks.append(_Tok("RPAREN", c, i))
            i += 1
        elif c == '"':
            start = i
            value, i = _read_quoted(query, i, '"', "phrase")
            star = i < n and query[i] == "*"
            toks.append(_Tok("PHRASE", value + ("*" if star else ""), start))
            i += star
        elif c == "/":
            start = i
            value, i = _read_quoted(query, i, "/", "regular expression")
            toks.append(_Tok("REGEX", value, start))
        elif c == "-" and i + 1 < n and not query[i + 1].isspace():
            toks.append(_Tok("MINUS", c, i))
            i += 1
        else:
            i = _lex_word(query, i, toks)
    toks.append(_Tok("END", "", n))
    return toks


def _read_quoted(query: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """Read ``quote…quote`` from ``start``; backslash escapes the quote and itself."""
    out: list[str] = []
    i = start + 1
    while i < len(query):
        c = query[i]
        if c == "\\" and i + 1 < len(query) and query[i + 1] in (quote, "\\"):
            # In a regex, keep "\\" as written: it is RE2's escape too.
            out.append(query[i + 1] if quote == '"' or query[i + 1] == quote else "\\\\")
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise QuerySyntaxError(f"unterminated {what}: missing closing {quote}", start)


def _lex_word(query: str, i: int, toks: list[_Tok]) -> int:
    start = i
    field_match = _FIELD.match(query, i)
    if field_match:
        toks.append(_Tok("FIELD", field_match.group(1), start))
        return field_match.end()
    while i < len(query) and not query[i].isspace() and query[i] not in _SPECIAL_CHARS:
        i += 1
    word = query[start:i]
    if word in ("AND", "OR", "NOT"):
        toks.append(_Tok(word, word, start))
    elif near := _NEAR.fullmatch(word):
        distance = near.group(1)
        if distance is None or not distance.isdigit():
            raise QuerySyntaxError("NEAR needs a distance in tokens, as in NEAR/5", start)
        toks.append(_Tok("NEAR", word, start, int(distance)))
    elif word.startswith("@"):
        toks.append(_Tok("ENTITY", word[1:], start))
    else:
        toks.append(_Tok("WORD", word, start))
    return i


# --- parser -------------------------------------------------------------------------------------

_ParseFn: TypeAlias = Callable[[], Node]
_TERM_START = {"LPAREN", "NOT", "MINUS", "FIELD", "PHRASE", "WORD", "ENTITY", "REGEX"}


MAX_DEPTH = 32  # parentheses and NOT/- nested deeper than this are refused, never recursed into


class _Parser:
    def __init__(self, query: str, entities: Mapping[str, Sequence[str]]) -> None:
        self.toks = _lex(query)
        self.pos = 0
        self.entities = entities
        self.depth = 0

    def deeper(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(
                f"nested more than {MAX_DEPTH} deep (parentheses, NOT or -)", offset
            )

    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise QuerySyntaxError("empty query", 0)
        node = self.parse_or()
        if self.tok.kind == "RPAREN":
            raise QuerySyntaxError("unexpected ')' without a matching '('", self.tok.offset)
        if self.tok.kind != "END":
            raise QuerySyntaxError(f"unexpected {self.tok.value!r}", self.tok.offset)
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while self.tok.kind == "OR":
            op = self.take()
            children.append(self.operand(self.parse_and, op.value, op.offset))
        return make_or(children)

    def parse_and(self) -> Node:
        children = [self.parse_near()]
        while self.tok.kind == "AND" or self.tok.kind in _TERM_START:
            if self.tok.kind == "AND":
                op = self.take()
                children.append(self.operand(self.parse_near, "AND", op.offset))
            else:
                children.append(self.parse_near())
        return make_and(children)

    def parse_near(self) -> Node:
        node = self.parse_unary()
        while self.tok.kind == "NEAR":
            op = self.take()
            right = self.operand(self.parse_unary, op.value, op.offset)
            node = make_near(node, right, op.within, op.offset)
        return node

    def parse_unary(self) -> Node:
        if self.tok.kind in ("NOT", "MINUS"):
            op = self.take()
            self.deeper(op.offset)
            node = Not(self.operand(self.parse_unary, op.value, op.offset))
            self.depth -= 1
            return node
        return self.parse_primary()

    def operand(self, parse: _ParseFn, op: str, offset: int) -> Node:
        """Parse the term an operator needs, with a clear error when it is missing."""
        if self.tok.kind not in _TERM_START:
            raise QuerySyntaxError(f"{op} needs a term after it", offset)
        return parse()

    def parse_primary(self) -> Node:
        tok = self.take()
        if tok.kind == "LPAREN":
            if self.tok.kind == "RPAREN":
                raise QuerySyntaxError("empty parentheses", tok.offset)
            self.deeper(tok.offset)
            node = self.parse_or()
            if self.tok.kind != "RPAREN":
                raise QuerySyntaxError("missing ')' to close this '('", tok.offset)
            self.take()
            self.depth -= 1
            return node
        if tok.kind == "FIELD":
            name = tok.value.lower()
            if name not in FIELDS:
                raise QuerySyntaxError(
                    f"unknown field '{tok.value}:' (fields: {', '.join(FIELDS)})", tok.offset
                )
            if self.tok.kind not in _TERM_START - {"NOT", "MINUS", "FIELD"}:
                raise QuerySyntaxError(f"'{tok.value}:' needs a term after it", tok.offset)
            return restrict(self.parse_primary(), frozenset({name}))
        if tok.kind in ("PHRASE", "WORD"):
            return make_term(tok.value, tok.offset)
        if tok.kind == "ENTITY":
            return make_entity(tok.value, self.entities, tok.offset)
        if tok.kind == "REGEX":
            return make_regex(tok.value, tok.offset)
        if tok.kind == "RPAREN":
            raise QuerySyntaxError("unexpected ')' without a matching '('", tok.offset)
        if tok.kind == "END":
            raise QuerySyntaxError("the query ends where a term was expected", tok.offset)
        raise QuerySyntaxError(f"{tok.value} needs a term before it", tok.offset)


def parse(query: str, entities: Mapping[str, Sequence[str]] | None = None) -> Node:
    """Parse ``query`` into a tree; raise ``QuerySyntaxError`` with the offset of the problem."""
    return _Parser(query, entities or {}).parse()


_TERM_END = {"WORD", "PHRASE", "ENTITY", "REGEX", "RPAREN"}
SHORT_PREFIX = 3  # letters before * below which a prefix matches too many words


def lint(query: str) -> list[tuple[int, str]]:
    """What in a valid query probably does not mean what its writer meant: ``(offset,
    message)`` pairs for ``rules check`` to show as warnings."""
    try:
        toks = _lex(query)
        tree = parse(query)
    except QuerySyntaxError:
        return []
    found: list[tuple[int, str]] = []
    for before, tok, after in zip([None, *toks[:-1]], toks, [*toks[1:], None], strict=True):
        if tok.kind != "WORD":
            continue
        between = before is not None and before.kind in _TERM_END
        if tok.value in ("and", "or", "not") and between and after and after.kind in _TERM_START:
            found.append(
                (
                    tok.offset,
                    f"lowercase '{tok.value}' is searched as a word: write {tok.value.upper()} "
                    "for the operator",
                )
            )
        if tok.value.endswith("*") and len(tok.value.rstrip("*")) < SHORT_PREFIX:
            found.append(
                (tok.offset, f"the prefix '{tok.value}' is short: it matches a great many words")
            )
    if isinstance(tree, Not):
        found.append((0, "the query is only a negation: it matches nearly every item"))
    words = [t for t in toks if t.kind == "WORD"]
    operators = any(t.value in ("and", "or", "not") for t in words)
    if len(words) >= 2 and len(words) == len(toks) - 1 and not operators:
        found.append(
            (
                0,
                "the words are matched anywhere in the item (AND), not as a phrase: quote them "
                'to match "the words in a row"',
            )
        )
    return found


def describe(node: Node) -> str:
    """The tree written back as a fully parenthesized query (for ``rules test`` and debugging)."""
    if isinstance(node, Term):
        words = " ".join(node.words) + ("*" if node.prefix else "")
        body = f'"{words}"' if len(node.words) > 1 else words
    elif isinstance(node, Entity):
        body = f"@{node.id}"
    elif isinstance(node, Regex):
        body = f"/{node.pattern}/"
    elif isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(describe(c) for c in node.children) + ")"
    elif isinstance(node, Not):
        return f"NOT {describe(node.child)}"
    else:
        return f"({describe(node.left)} NEAR/{node.within} {describe(node.right)})"
    if node.fields is not None:
        return f"{'|'.join(sorted(node.fields))}:{body}"
    return body
