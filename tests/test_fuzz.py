"""Fuzzing the parsers that read what users and feeds write (bounded, deterministic examples):
only the project's own errors come out, and offsets map back into the text."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core import query as q
from monitor.core.rules import build_config
from monitor.core.text import tokenize
from monitor.errors import ConfigError, QuerySyntaxError, SourceError
from monitor.sources.feed import parse_feed

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
QUERY_ALPHABET = st.sampled_from(
    [*"ab ()\"'*-:/@\\\t\n½²①éßİ台湾", "AND ", "OR ", "NOT ", "NEAR/3 ", "title:", "text:"]
)


@FUZZ
@given(st.lists(QUERY_ALPHABET, max_size=60).map("".join))
def test_the_query_parser_raises_only_its_own_error(text: str) -> None:
    try:
        q.parse(text)
    except QuerySyntaxError as exc:
        assert 0 <= exc.offset <= len(text)


@FUZZ
@given(st.text(max_size=200))
def test_tokens_map_back_to_the_text_in_order(text: str) -> None:
    tokens = tokenize(text)
    end = 0
    for start, stop in zip(tokens.starts, tokens.ends, strict=True):
        assert end <= start < stop <= len(text)
        end = stop


YAML_PIECES = st.sampled_from(
    [
        "rules:\n", "  - ", "{id: a, query: x}", "id: b\n", "query: '(a'\n", "&x ", "*x",
        "<<: *x\n", "sources:\n", "channels:\n", "- ", ": ", "[", "]", "{", "}", "\n", "    ",
        "!!python/object ", "${NOPE}", "every: 5m\n", "'", '"', "#", "|\n", "%YAML 1.1\n",
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(YAML_PIECES, max_size=40).map("".join))
def test_the_rule_loader_raises_only_configuration_errors(text: str) -> None:
    try:
        build_config([("r.yaml", text)], {})
    except ConfigError as exc:
        assert exc.problems and all(str(p).startswith("r.yaml:") for p in exc.problems)


FEED_SEEDS = sorted(path.read_bytes() for path in FEEDS.glob("*.xml"))[:6]


@FUZZ
@given(
    st.sampled_from(FEED_SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=8)), max_size=6),
)
def test_the_feed_parser_raises_only_its_own_error(
    seed: bytes, edits: list[tuple[int, bytes]]
) -> None:
    data = bytearray(seed)
    for at, piece in edits:
        at %= max(len(data), 1)
        data[at : at + len(piece)] = piece
    with contextlib.suppress(SourceError):  # its own error, or a result: nothing else
        parse_feed(bytes(data), "fuzz", "https://example.com/feed")
