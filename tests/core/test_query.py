"""The query language: precedence, leaves, fields, and every error with its offset."""

from __future__ import annotations

import pytest

from monitor.core.query import (
    And,
    Entity,
    Near,
    Not,
    Or,
    Regex,
    Term,
    describe,
    lint,
    parse,
)
from monitor.errors import MonitorError, QuerySyntaxError

ENTITIES = {
    "maduro": ["Nicolás Maduro", "Maduro"],
    "lavrov": ["Sergey Lavrov", "Sergei Lavrov", "Lavrov"],
    "unsc": ["Security Council", "UNSC"],
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Precedence: OR loosest, then AND (explicit or implicit), NEAR, NOT/-.
        ("a OR b c", "(a OR (b AND c))"),
        ("a b OR c", "((a AND b) OR c)"),
        ("a AND b OR c AND d", "((a AND b) OR (c AND d))"),
        ("a OR b AND c OR d", "(a OR (b AND c) OR d)"),
        ("NOT a b", "(NOT a AND b)"),
        ("NOT a OR b", "(NOT a OR b)"),
        ("x OR NOT y", "(x OR NOT y)"),
        ("-a b", "(NOT a AND b)"),
        ("a -b", "(a AND NOT b)"),
        ('a -"b c"', '(a AND NOT "b c")'),
        ("a -(b OR c)", "(a AND NOT (b OR c))"),
        ("(a) -b", "(a AND NOT b)"),
        ("a OR -b", "(a OR NOT b)"),
        ("a AND -b", "(a AND NOT b)"),
        ("a (-b)", "(a AND NOT b)"),
        ("-(a b)", "NOT (a AND b)"),
        ("--a", "NOT NOT a"),
        ("NOT NOT a", "NOT NOT a"),
        ("NOT (a OR b)", "NOT (a OR b)"),
        ("a NEAR/2 b OR c", "((a NEAR/2 b) OR c)"),
        ("c OR a NEAR/2 b", "(c OR (a NEAR/2 b))"),
        ("a NEAR/2 b c", "((a NEAR/2 b) AND c)"),
        ("a NEAR/2 b AND c", "((a NEAR/2 b) AND c)"),
        ("a NEAR/2 b NEAR/3 c", "((a NEAR/2 b) NEAR/3 c)"),
        ("a NEAR/0 b", "(a NEAR/0 b)"),
        ("(a OR b) NEAR/3 c", "((a OR b) NEAR/3 c)"),
        ("a NEAR/3 (b OR c)", "(a NEAR/3 (b OR c))"),
        ("(a NEAR/1 b) NEAR/2 c", "((a NEAR/1 b) NEAR/2 c)"),
        ("@maduro NEAR/2 @lavrov", "(@maduro NEAR/2 @lavrov)"),
        ('"security council" NEAR/5 meet*', '("security council" NEAR/5 meet*)'),
        ("((a OR b) (c OR (d e)))", "((a OR b) AND (c OR (d AND e)))"),
        ("(((a)))", "a"),
        ("a OR (b OR c)", "(a OR b OR c)"),
        ("a (b c)", "(a AND b AND c)"),
        # Implicit AND.
        ("a b c", "(a AND b AND c)"),
        ("a AND b c", "(a AND b AND c)"),
        ('a"b c"', '(a AND "b c")'),
        ('"a"b', "(a AND b)"),
        ("a(b)", "(a AND b)"),
        # Lower-case operators are words.
        ("a and b", "(a AND and AND b)"),
        ("a or b", "(a AND or AND b)"),
        ("not a", "(not AND a)"),
        ("And Or Not", "(and AND or AND not)"),
        ("a near/2 b", '(a AND "near 2" AND b)'),
        # Words and phrases are normalized like article text.
        ("Rodríguez", "rodriguez"),
        ("A OR B", "(a OR b)"),
        ("U.S.", "us"),
        ('"U.S. custody"', '"us custody"'),
        ('"Security   Council"', '"security council"'),
        ("a-b", '"a b"'),
        ("a/b", '"a b"'),
        ("Russia’s", "russia"),
        ('"say \\"hi\\""', '"say hi"'),
        ('"back\\\\slash"', '"back slash"'),
        # Prefixes.
        ("release*", "release*"),
        ("Releas*", "releas*"),
        ("re*", "re*"),
        ('"nicolas madur*"', '"nicolas madur*"'),
        ('"Nicolás Madur"*', '"nicolas madur*"'),
        # Entities.
        ("@maduro", "@maduro"),
        ("@maduro AND release*", "(@maduro AND release*)"),
        # Fields on words, phrases, entities, regexes and groups.
        ("title:x", "title:x"),
        ("TITLE:x", "title:x"),
        ("text:x url:y", "(text:x AND url:y)"),
        ("source:seeds author:smith", "(source:seeds AND author:smith)"),
        ('title:"a b"', 'title:"a b"'),
        ("title:release*", "title:release*"),
        ("title:@maduro", "title:@maduro"),
        ("title:/x+/", "title:/x+/"),
        ("title:(a OR b)", "(title:a OR title:b)"),
        ("title:(a text:b)", "(title:a AND text:b)"),
        ("title:(a NEAR/2 b)", "(title:a NEAR/2 title:b)"),
        ("title:(a -b)", "(title:a AND NOT title:b)"),
        ("NOT title:x", "NOT title:x"),
        ("-title:x", "NOT title:x"),
        ("url:example.com", 'url:"example com"'),
        # Regular expressions.
        ("/fo+/", "/fo+/"),
        ("/ab\\/c/", "/ab/c/"),
        ("/\\d+/", "/\\d+/"),
        ("/a\\\\d/", "/a\\\\d/"),
        ("/x/ y", "(/x/ AND y)"),
        ("y /x/", "(y AND /x/)"),
        ("(y) /x/", "(y AND /x/)"),
        ("y OR /x/", "(y OR /x/)"),
        ("a NEAR/2 /x/", "(a NEAR/2 /x/)"),
        ("-/x/", "NOT /x/"),
    ],
)
def test_parse_describe(query: str, expected: str) -> None:
    assert describe(parse(query, ENTITIES)) == expected


def t(*words: str, prefix: bool = False, fields: frozenset[str] | None = None) -> Term:
    return Term(words, prefix, fields)


MADURO = Entity("maduro", (t("nicolas", "maduro"), t("maduro")))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("@maduro AND release*", And((MADURO, t("release", prefix=True)))),
        ("@maduro release*", And((MADURO, t("release", prefix=True)))),
        ('title:"a b" OR c', Or((t("a", "b", fields=frozenset({"title"})), t("c")))),
        ("a NEAR/3 (b OR c)", Near(t("a"), Or((t("b"), t("c"))), 3)),
        ("-a", Not(t("a"))),
        ("NOT a b", And((Not(t("a")), t("b")))),
        ("/ab\\/c/", Regex("ab/c")),
        ("/a\\\\d/", Regex("a\\\\d")),
        ("text:/x/", Regex("x", frozenset({"text"}))),
        ("title:@maduro", Entity("maduro", MADURO.terms, frozenset({"title"}))),
        (
            "title:(a OR text:b)",
            Or((t("a", fields=frozenset({"title"})), t("b", fields=frozenset({"text"})))),
        ),
        ('"U.S. custody"', t("us", "custody")),
        ('"nicolas madur*"', t("nicolas", "madur", prefix=True)),
    ],
)
def test_parse_tree(query: str, expected: object) -> None:
    assert parse(query, ENTITIES) == expected


def test_term_keeps_the_text_as_written() -> None:
    assert parse('"say \\"hi\\""') == t("say", "hi")
    phrase = parse('"say \\"hi\\""')
    assert isinstance(phrase, Term)
    assert phrase.text == 'say "hi"'
    backslash = parse('"back\\\\slash"')
    assert isinstance(backslash, Term)
    assert backslash.text == "back\\slash"
    word = parse("Rodríguez*")
    assert isinstance(word, Term)
    assert (word.words, word.prefix, word.text) == (("rodriguez",), True, "Rodríguez*")


def test_entity_aliases_that_normalize_alike_are_one_term() -> None:
    entities = {"m": ["Maduro", "MADURO", "Nicolás Maduro", "Nicolas Maduro"]}
    assert parse("@m", entities) == Entity("m", (t("maduro"), t("nicolas", "maduro")))


@pytest.mark.parametrize(
    ("query", "offset", "message"),
    [
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        # Dangling operators, at either end.
        ("AND a", 0, "AND needs a term before it"),
        ("a AND", 2, "AND needs a term after it"),
        ("OR a", 0, "OR needs a term before it"),
        ("a OR", 2, "OR needs a term after it"),
        ("NOT", 0, "NOT needs a term after it"),
        ("a NOT", 2, "NOT needs a term after it"),
        ("a AND NOT", 6, "NOT needs a term after it"),
        ("a b AND", 4, "AND needs a term after it"),
        ("(a OR)", 3, "OR needs a term after it"),
        ("(NOT)", 1, "NOT needs a term after it"),
        ("a (OR b)", 3, "OR needs a term before it"),
        ("a OR OR b", 2, "OR needs a term after it"),
        ("a AND AND b", 2, "AND needs a term after it"),
        ("a AND OR b", 2, "AND needs a term after it"),
        # Parentheses.
        ("(a", 0, "missing ')' to close this '('"),
        ("((a)", 0, "missing ')' to close this '('"),
        ("x (a OR (b)", 2, "missing ')' to close this '('"),
        ("title:(a", 6, "missing ')' to close this '('"),
        ("a)", 1, "unexpected ')' without a matching '('"),
        ("(a))", 3, "unexpected ')' without a matching '('"),
        (")", 0, "unexpected ')' without a matching '('"),
        ("()", 0, "empty parentheses"),
        ("a ( )", 2, "empty parentheses"),
        # Phrases and regexes that never end.
        ('"abc', 0, 'unterminated phrase: missing closing "'),
        ('a "b c', 2, 'unterminated phrase: missing closing "'),
        ('"abc\\"', 0, 'unterminated phrase: missing closing "'),
        ("/abc", 0, "unterminated regular expression: missing closing /"),
        ("x OR /ab\\/", 5, "unterminated regular expression: missing closing /"),
        # NEAR.
        ("NEAR", 0, "NEAR needs a distance in tokens, as in NEAR/5"),
        ("a NEAR b", 2, "NEAR needs a distance in tokens, as in NEAR/5"),
        ("a NEAR/ b", 2, "NEAR needs a distance in tokens, as in NEAR/5"),
        ("a NEAR/x b", 2, "NEAR needs a distance in tokens, as in NEAR/5"),
        ("a NEAR/-1 b", 2, "NEAR needs a distance in tokens, as in NEAR/5"),
        ("a NEAR/2x b", 2, "NEAR needs a distance in tokens, as in NEAR/5"),
        ("a NEAR/2", 2, "NEAR/2 needs a term after it"),
        ("a NEAR/2 AND b", 2, "NEAR/2 needs a term after it"),
        ("a NEAR/2 (b AND c)", 2, "NEAR/2 needs words, phrases, entities or OR-groups"),
        ("a NEAR/2 (b c)", 2, "NEAR/2 needs words, phrases, entities or OR-groups"),
        ("(a b) NEAR/2 c", 6, "NEAR/2 needs words, phrases, entities or OR-groups"),
        ("a NEAR/2 NOT b", 2, "NEAR/2 needs words, phrases, entities or OR-groups"),
        ("NOT a NEAR/2 b", 6, "NEAR/2 needs words, phrases, entities or OR-groups"),
        # Entities.
        ("@madur0", 0, "unknown entity @madur0 (did you mean @maduro?)"),
        ("x AND @lavorv", 6, "unknown entity @lavorv (did you mean @lavrov?)"),
        ("@", 0, "an entity name must follow '@'"),
        # Regular expressions RE2 rejects (including what Python's re would accept).
        ("/a(/", 0, "invalid regular expression /a(/: missing )"),
        ("x OR /[a/", 5, "invalid regular expression /[a/"),
        ("/(?=x)y/", 0, "invalid regular expression /(?=x)y/"),
        ("/(a)\\1/", 0, "invalid regular expression /(a)\\1/"),
        # Fields.
        ("titel:x", 0, "unknown field 'titel:' (fields: title, text, url, source, author)"),
        ("a body:x", 2, "unknown field 'body:'"),
        ("title:-a", 0, "'title:' needs a term after it"),
        ("title:NOT a", 0, "'title:' needs a term after it"),
        ("title:text:a", 0, "'title:' needs a term after it"),
        # Terms with nothing to match.
        ("&&", 0, "'&&' has no letters or digits to match"),
        ("a && b", 2, "'&&' has no letters or digits to match"),
        ('""', 0, "empty phrase"),
        ('a ""', 2, "empty phrase"),
        ('x "!?"', 2, "'!?' has no letters or digits to match"),
        ('x "\\"&&\\""', 2, "'\"&&\"' has no letters or digits to match"),
        ('"say \\"hi\\"" "&&"', 13, "'&&' has no letters or digits to match"),
        # Wildcards.
        ("re*ase", 0, "'re*ase': a wildcard may only end a word"),
        ("*ab", 0, "'*ab': a wildcard may only end a word"),
        ("x a*b*", 2, "'a*b*': a wildcard may only end a word"),
        ('"a*b c"', 0, "'a*b c': a wildcard may only end a word"),
        ("r*", 0, "'r*': a prefix needs at least 2 letters before the '*'"),
        ("x OR r*", 5, "'r*': a prefix needs at least 2 letters before the '*'"),
        ('"nicolas m*"', 0, "'nicolas m*': a prefix needs at least 2 letters before the '*'"),
        ('"nicolas *"', 0, "'nicolas *': a prefix needs at least 2 letters before the '*'"),
    ],
)
def test_syntax_errors(query: str, offset: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query, ENTITIES)
    error = caught.value
    assert (error.offset, error.message[: len(message)]) == (offset, message)
    assert str(error).endswith(f"(at character {offset + 1})")


def test_unknown_entity_without_a_close_name_has_no_hint() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse("x @nobody", ENTITIES)
    assert (caught.value.offset, caught.value.message) == (2, "unknown entity @nobody")


def test_entities_are_optional() -> None:
    assert parse("a b") == And((t("a"), t("b")))
    with pytest.raises(QuerySyntaxError, match="unknown entity @maduro"):
        parse("@maduro")


def test_syntax_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse("(")
    assert issubclass(QuerySyntaxError, MonitorError)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("url:http://x.com/a-b", 'url:"http x com a b"'),
        ("https://y.org", '"https y org"'),
        ("title:/x+/", "title:/x+/"),
    ],
)
def test_urls_are_words_not_fields(query: str, expected: str) -> None:
    assert describe(parse(query)) == expected


@pytest.mark.parametrize(
    ("query", "warned"),
    [
        ("maduro and release", ["lowercase 'and' is searched as a word: write AND"]),
        ("maduro or lavrov", ["lowercase 'or'"]),
        ("NOT maduro", ["the query is only a negation"]),
        ("-maduro", ["the query is only a negation"]),
        ("nicolas maduro", ["the words are matched anywhere in the item (AND), not as a phrase"]),
        ("ma* AND x", ["the prefix 'ma*' is short"]),
        ("台湾 OR x", []),  # matched as its run of characters: nothing to warn about
        ('"nicolas maduro"', []),
        ("maduro AND release*", []),
        ("maduro", []),
        ("(maduro OR lavrov) AND NOT sanctions", []),
        ("and", []),
    ],
)
def test_lint_warns_of_what_is_valid_but_probably_not_meant(query: str, warned: list[str]) -> None:
    messages = [message for _, message in lint(query)]
    assert len(messages) == len(warned), messages
    for message, start in zip(messages, warned, strict=True):
        assert message.startswith(start)
