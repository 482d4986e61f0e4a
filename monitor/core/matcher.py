"""Rules → one Aho-Corasick automaton; ``match(item)`` → the rules that match and why.

Every literal term of every rule (words, phrases, prefixes, entity aliases) becomes one pattern
over the space-joined token stream of a field: ``" security council "`` finds the phrase only on
token boundaries, ``" releas"`` (no trailing space) finds every token starting with it. One pass
of the automaton over each field finds all occurrences of all terms at once, so the cost per item
grows with the text and the number of hits, not with the number of rules. Only rules with a term
that must occur for them to match (their rarest required terms, see ``anchors``) are evaluated,
plus the few that could match without any term (``NOT x``, regex-only).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import ahocorasick

from monitor.core import query as q
from monitor.core.analysis import Analysis
from monitor.core.rules import Rule
from monitor.core.text import Folded, Tokens, fold, tokenize
from monitor.models import FIELDS, Item, Match, RuleMatch


@dataclass(frozen=True, slots=True)
class _Span:
    """A positional hit: tokens ``[first, last)`` of ``field``, with the matches behind it."""

    field: str
    first: int
    last: int
    matches: tuple[Match, ...]


class _Tri(Enum):
    NO = 0
    MAYBE = 1
    YES = 2


_NO_ANCHOR = (float("inf"), frozenset[q.Term]())


def _term_cost(term: q.Term) -> float:
    """A rough guess of how often a term occurs: phrases are rarer than words, prefixes commoner."""
    cost = 1.0 / 10.0 ** (len(term.words) - 1)
    return cost * (3.0 if term.prefix else 1.0) / min(max(len(term.words[-1]), 1), 8) * 8


def anchors(node: q.Node) -> tuple[float, frozenset[q.Term]]:
    """Terms of which at least one must occur for ``node`` to be true, chosen to be rare.

    An AND needs only its most selective child; an OR needs all of its children's anchors. A rule
    is looked at only when one of its anchors occurs, so adding rules that share a common word
    does not make every item evaluate all of them.
    """
    if isinstance(node, q.Term):
        return _term_cost(node), frozenset({node})
    if isinstance(node, q.Entity):
        return sum(_term_cost(t) for t in node.terms), frozenset(node.terms)
    if isinstance(node, q.Regex | q.Not):
        return _NO_ANCHOR
    if isinstance(node, q.Near):
        return min(anchors(node.left), anchors(node.right), key=_cost)
    options = [anchors(child) for child in node.children]
    if isinstance(node, q.And):
        return min(options, key=_cost)
    if any(cost == float("inf") for cost, _ in options):
        return _NO_ANCHOR
    return sum(cost for cost, _ in options), frozenset().union(*(terms for _, terms in options))


def _cost(anchor: tuple[float, frozenset[q.Term]]) -> float:
    return anchor[0]


def _without_terms(node: q.Node) -> _Tri:
    """Could ``node`` be true in a text where no literal term occurs? (regexes: maybe)."""
    if isinstance(node, q.Term | q.Entity):
        return _Tri.NO
    if isinstance(node, q.Regex):
        return _Tri.MAYBE
    if isinstance(node, q.Not):
        inner = _without_terms(node.child)
        return {_Tri.NO: _Tri.YES, _Tri.YES: _Tri.NO, _Tri.MAYBE: _Tri.MAYBE}[inner]
    if isinstance(node, q.Near):
        sides = (_without_terms(node.left), _without_terms(node.right))
        return _Tri.NO if _Tri.NO in sides else _Tri.MAYBE
    values = [_without_terms(child) for child in node.children]
    if isinstance(node, q.And):
        return min(values, key=lambda v: v.value)
    return max(values, key=lambda v: v.value)


class _Field:
    """One field of the item being matched: its tokens, joined text and folded text."""

    __slots__ = ("_folded", "joined_starts", "text", "tokens")

    def __init__(self, text: str, tokens: Tokens | None = None) -> None:
        self.text = text
        self.tokens: Tokens = tokens if tokens is not None else tokenize(text)
        starts: list[int] = []
        pos = 1
        for word in self.tokens.words:
            starts.append(pos)
            pos += len(word) + 1
        self.joined_starts = starts
        self._folded: Folded | None = None

    @property
    def joined(self) -> str:
        return " " + " ".join(self.tokens.words) + " "

    @property
    def folded(self) -> Folded:
        if self._folded is None:
            self._folded = fold(self.text)
        return self._folded

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """The tokens that a character span of the original text touches."""
        first = bisect_right(self.tokens.ends, start)
        last = bisect_left(self.tokens.starts, end)
        return first, max(first, last)


class Matcher:
    """Matches items against a fixed set of rules; build a new one when the rules change."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._term_ids: dict[tuple[tuple[str, ...], bool], int] = {}
        self._rules_by_term: dict[int, list[int]] = defaultdict(list)
        self._always: list[int] = []
        fields: set[str] = set()
        self._automaton = ahocorasick.Automaton()
        for index, rule in enumerate(self.rules):
            for leaf in q.leaves(rule.expr):
                fields |= leaf.fields or set()
                for term in leaf.terms if isinstance(leaf, q.Entity) else (leaf,):
                    if isinstance(term, q.Term):
                        self._add_term(term)
            cost, required = anchors(rule.expr)
            if _without_terms(rule.expr) is not _Tri.NO or cost == float("inf"):
                self._always.append(index)
                continue
            for term_id in {self._term_ids[(t.words, t.prefix)] for t in required}:
                self._rules_by_term[term_id].append(index)
        self._fields = tuple(f for f in FIELDS if f in fields)
        if self._term_ids:
            self._automaton.make_automaton()

    def _add_term(self, term: q.Term) -> int:
        key = (term.words, term.prefix)
        term_id = self._term_ids.get(key)
        if term_id is None:
            term_id = self._term_ids[key] = len(self._term_ids)
            pattern = " " + " ".join(term.words) + ("" if term.prefix else " ")
            self._automaton.add_word(pattern, (term_id, len(term.words), len(pattern)))
        return term_id

    @property
    def term_count(self) -> int:
        return len(self._term_ids)

    def match(self, item: Item, analysis: Analysis | None = None) -> list[RuleMatch]:
        """Every rule that matches ``item``, in rule order, each with what matched where.
        ``analysis``: the item's words already found (its title and text are not tokenized
        again when they are the item's own)."""
        return _Evaluation(self, item, analysis).run()


class _Evaluation:
    """The matching of one item: field tokens, term occurrences, and rule evaluation."""

    def __init__(self, matcher: Matcher, item: Item, analysis: Analysis | None) -> None:
        self.matcher = matcher
        self.item = item
        found: dict[str, tuple[str, Tokens]] = {}  # a field's text and tokens, already known
        if analysis is not None:
            found["title"] = (analysis.title, analysis.title_tokens)
            found["text"] = (analysis.text, analysis.tokens)
        self.fields = {}
        for name in matcher._fields:
            text = item.field(name)
            known_text, tokens = found.get(name, (None, None))
            self.fields[name] = _Field(text, tokens if known_text == text else None)
        self.hits: dict[int, list[tuple[str, int, int]]] = defaultdict(list)

    def run(self) -> list[RuleMatch]:
        matcher = self.matcher
        if matcher._term_ids:
            for name, fld in self.fields.items():
                if not fld.tokens.words:
                    continue
                starts = fld.joined_starts
                for end, (term_id, words, length) in matcher._automaton.iter(fld.joined):
                    # ``end`` is the pattern's last character; its first is the space before.
                    first = bisect_left(starts, end - length + 2)
                    self.hits[term_id].append((name, first, first + words))
        candidates = set(matcher._always)
        for term_id in self.hits:
            candidates.update(matcher._rules_by_term[term_id])
        results: list[RuleMatch] = []
        for index in sorted(candidates):
            rule = matcher.rules[index]
            if rule.sources is not None and self.item.source not in rule.sources:
                continue
            found = self.evaluate(rule.expr)
            if found is not None:
                results.append(RuleMatch(rule.id, _ordered(found)))
        return results

    def evaluate(self, node: q.Node) -> tuple[Match, ...] | None:
        """None when ``node`` is false; else the matches that make it true (maybe none)."""
        if isinstance(node, q.And):
            found: list[Match] = []
            for child in node.children:
                sub = self.evaluate(child)
                if sub is None:
                    return None
                found.extend(sub)
            return tuple(found)
        if isinstance(node, q.Or):
            results = [self.evaluate(child) for child in node.children]
            true = [r for r in results if r is not None]
            return tuple(m for r in true for m in r) if true else None
        if isinstance(node, q.Not):
            return () if self.evaluate(node.child) is None else None
        spans = self.spans(node)
        return tuple(m for s in spans for m in s.matches) if spans else None

    def spans(self, node: q.Node) -> list[_Span]:
        """Where a positional node (term, entity, regex, OR of them, NEAR) occurs."""
        if isinstance(node, q.Term):
            return self.term_spans(node, node.fields, node.text)
        if isinstance(node, q.Entity):
            return [s for t in node.terms for s in self.term_spans(t, node.fields, t.text)]
        if isinstance(node, q.Regex):
            return self.regex_spans(node)
        if isinstance(node, q.Or):
            return [s for child in node.children for s in self.spans(child)]
        if isinstance(node, q.Near):
            return self.near_spans(node)
        raise TypeError(f"not positional: {node!r}")  # the parser prevents this

    def term_spans(self, term: q.Term, fields: q.Fields, label: str) -> list[_Span]:
        term_id = self.matcher._term_ids.get((term.words, term.prefix))
        out: list[_Span] = []
        for name, first, last in self.hits.get(term_id, ()) if term_id is not None else ():
            if fields is None or name in fields:
                tokens = self.fields[name].tokens
                match = Match(name, label, tokens.starts[first], tokens.ends[last - 1])
                out.append(_Span(name, first, last, (match,)))
        return out

    def regex_spans(self, node: q.Regex) -> list[_Span]:
        pattern = q.compile_regex(node.pattern)
        out: list[_Span] = []
        for name in node.fields or self.fields:
            fld = self.fields[name]
            folded = fld.folded
            for found in pattern.finditer(folded.text):
                start, end = folded.span(*found.span())
                if start == end:
                    continue
                first, last = fld.token_range(start, end)
                match = Match(name, f"/{node.pattern}/", start, end)
                out.append(_Span(name, first, last, (match,)))
        return out

    def near_spans(self, node: q.Near) -> list[_Span]:
        left, right = self.spans(node.left), self.spans(node.right)
        out: list[_Span] = []
        for a in left:
            for b in right:
                if a.field != b.field or (a.first, a.last) == (b.first, b.last):
                    continue
                gap = max(b.first - a.last, a.first - b.last, 0)
                if gap <= node.within:
                    first, last = min(a.first, b.first), max(a.last, b.last)
                    out.append(_Span(a.field, first, last, a.matches + b.matches))
        return out


def _ordered(matches: Iterable[Match]) -> tuple[Match, ...]:
    """In text order, each place once: a match inside a longer one ("Maduro" within "Nicolás
    Maduro") is left out, so highlights never nest."""
    order = {name: i for i, name in enumerate(FIELDS)}
    ranked = sorted(set(matches), key=lambda m: (order[m.field], m.start, -m.end, m.term))
    kept: list[Match] = []
    for match in ranked:
        last = kept[-1] if kept else None
        if (
            last
            and last.field == match.field
            and last.start <= match.start <= match.end <= last.end
        ):
            continue
        kept.append(match)
    return tuple(kept)
