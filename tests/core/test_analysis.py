"""An item's words found once: tokens, lines, boilerplate, and their use by the matcher."""

from __future__ import annotations

import pytest

from monitor.core import analysis as analysis_module
from monitor.core import matcher as matcher_module
from monitor.core import query as q
from monitor.core.analysis import analyse, keyed_lines
from monitor.core.matcher import Matcher
from monitor.core.rules import Rule
from monitor.core.text import Tokens, tokenize
from monitor.models import Item

TEXT = (
    "  Floods hit the Po valley on Monday.\n"
    "\n"
    "Read more: earlier coverage\n"
    "Rescuers reached Ferrara by boat.\r\n"
    "https://example.org/gallery\n"
    "Subscribe to the morning newsletter for updates.\n"
)


def rule(query: str) -> Rule:
    return Rule(id="r", name="r", expr=q.restrict(q.parse(query, {}), frozenset({"title", "text"})))


def test_tokens_and_lines_come_from_one_pass() -> None:
    found = analyse("Floods in Italy", TEXT)
    assert found.tokens == tokenize(TEXT)
    assert found.title_tokens == tokenize("Floods in Italy")
    assert [found.line(line) for line in found.lines] == [
        "Floods hit the Po valley on Monday.",
        "Read more: earlier coverage",
        "Rescuers reached Ferrara by boat.",
        "https://example.org/gallery",
        "Subscribe to the morning newsletter for updates.",
    ]
    assert found.line_count == 6
    for line in found.lines:
        words = found.tokens.words[line.first : line.stop]
        assert list(words) == list(tokenize(found.line(line)).words)


@pytest.mark.parametrize(
    ("repeated", "kept"),
    [
        ((), ["Floods hit the Po valley on Monday.", "Rescuers reached Ferrara by boat."]),
        (("Rescuers reached Ferrara by boat.",), ["Floods hit the Po valley on Monday."]),
    ],
)
def test_kept_lines_drop_boilerplate_and_what_the_source_repeats(
    repeated: tuple[str, ...], kept: list[str]
) -> None:
    found = analyse("", TEXT)
    keys = dict(keyed_lines(TEXT))
    lines = found.kept({keys[line] for line in repeated})
    assert [found.line(line) for line in lines] == kept
    tokens = found.tokens_of(lines)
    assert [TEXT[s:e] for s, e in zip(tokens.starts, tokens.ends, strict=True)] == [
        word for line in kept for word in line.rstrip(".").split()
    ]


def test_a_line_key_ignores_case_and_punctuation() -> None:
    (_, first), *_ = keyed_lines("Sign-up for our DAILY briefing today")
    (_, second), *_ = keyed_lines("sign up for our daily briefing, today!")
    assert first == second
    assert keyed_lines("Short line") == []  # too short to count as a repeat


def test_matcher_reads_the_analysis_instead_of_tokenizing_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = [rule('ferrara AND "po valley"')]
    item = Item(id="i", source="s", title="Floods in Italy", text=TEXT)
    plain = Matcher(rules).match(item)
    found = analysis_module.analyse(item.title, item.text)
    calls: list[str] = []

    def counted(text: str) -> Tokens:
        calls.append(text)
        return tokenize(text)

    monkeypatch.setattr(matcher_module, "tokenize", counted)
    assert Matcher(rules).match(item, found) == plain
    assert plain and calls == []


def test_matcher_tokenizes_a_field_the_analysis_saw_differently() -> None:
    rules = [rule("bold")]
    item = Item(id="i", source="s", title="t", text="a <b>bold</b> claim")
    other = analyse(item.title, "a bold claim")  # the plain text, not the item's own
    (result,) = Matcher(rules).match(item, other)
    ((field, start, end),) = [(m.field, m.start, m.end) for m in result.matches]
    assert field == "text" and item.text[start:end] == "bold"
