"""build_config: YAML documents → one validated configuration; every problem as path:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from monitor.core import positions
from monitor.core import query as q
from monitor.core.config import (
    ConsoleChannelSpec,
    EmailChannelSpec,
    FeedSourceSpec,
    ReplaySourceSpec,
    SlackChannelSpec,
    WebhookChannelSpec,
    WireSourceSpec,
)
from monitor.core.rules import IMPLICIT_CONSOLE, WatchConfig, build_config
from monitor.errors import ConfigError, Problem

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "tests" / "data" / "rules" / "full"
SECRET = "s3cr3t-value"
FULL_ENV = {
    "WIRE_TOKEN": SECRET,
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/" + SECRET,
    "SMTP_PASSWORD": SECRET,
    "HOOK_SECRET": SECRET,
}


def yaml_text(text: str) -> str:
    """Inline YAML, dedented; its first line is line 1."""
    return textwrap.dedent(text).lstrip("\n")


def build(*documents: tuple[str, str], env: dict[str, str] | None = None) -> WatchConfig:
    return build_config([(path, yaml_text(text)) for path, text in documents], env or {})


def problems(*documents: tuple[str, str], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(*documents, env=env)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


def full_documents() -> list[tuple[str, str]]:
    # The rules come before the entities they use: files are merged before rules compile.
    return [
        (str(FULL / name), (FULL / name).read_text(encoding="utf-8"))
        for name in ("watch.yaml", "entities.yaml")
    ]


# --- a valid configuration ------------------------------------------------------------------------


def test_full_config_builds() -> None:
    config = build_config(full_documents(), FULL_ENV)

    seeds, feed, wire = config.sources
    assert seeds == ReplaySourceSpec(id="seeds", type="replay", path="seeds/", every=30)
    assert isinstance(feed, FeedSourceSpec)
    assert (feed.id, feed.every, feed.min, feed.max) == ("moscowtimes", 300, 60, 3600)
    assert isinstance(wire, WireSourceSpec)
    assert (wire.id, wire.format) == ("agency", "ninjs")
    assert wire.headers["Authorization"].get_secret_value() == f"Bearer {SECRET}"

    assert config.entities == {
        "maduro": ("Nicolás Maduro", "Maduro"),
        "lavrov": ("Sergey Lavrov", "Sergei Lavrov", "Lavrov"),
        "unsc": ("Security Council", "UNSC"),
    }

    slack, email, hook, screen = config.channels
    assert isinstance(slack, SlackChannelSpec)
    assert slack.webhook_url is not None
    assert slack.webhook_url.get_secret_value() == FULL_ENV["SLACK_WEBHOOK_URL"]
    assert isinstance(email, EmailChannelSpec)
    assert (email.sender, email.to, email.port) == ("alerts@example.org", ["desk@example.org"], 587)
    assert email.password is not None
    assert email.password.get_secret_value() == SECRET
    assert isinstance(hook, WebhookChannelSpec)
    assert screen == ConsoleChannelSpec(id="screen", type="console", json=True, default=True)
    assert config.channel("hook") is hook
    assert config.channel("nope") is None

    rules = {rule.id: rule for rule in config.rules}
    assert list(rules) == ["maduro-release", "unsc-meeting", "lavrov-contact", "oil-headline"]
    release = rules["maduro-release"]
    assert (release.name, release.severity, release.channels, release.cooldown) == (
        "Calls to release Maduro",
        "high",
        ("newsroom",),
        12 * 3600,
    )
    assert release.sources is None
    assert release.origin == f"{FULL / 'watch.yaml'}:20"
    assert q.describe(release.expr) == "(text|title:@maduro AND text|title:release*)"
    unsc = rules["unsc-meeting"]
    assert (unsc.name, unsc.severity, unsc.channels, unsc.cooldown) == (
        "unsc-meeting",
        "normal",
        ("screen",),
        24 * 3600,
    )
    assert unsc.sources == frozenset({"seeds"})
    contact = rules["lavrov-contact"]
    assert (contact.channels, contact.severity, contact.cooldown) == (
        ("newsroom", "desk-mail"),
        "critical",
        5400,
    )
    oil = rules["oil-headline"]
    assert (oil.severity, oil.cooldown) == ("low", 90)
    assert q.describe(oil.expr) == "(title:venezuela* AND title:oil)"


def test_project_rules_directory_builds() -> None:
    documents = [
        (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "rules").glob("*.yaml"))
    ]
    config = build_config(documents, {})
    assert "maduro-release" in {rule.id for rule in config.rules}


def test_empty_documents_build_an_empty_config() -> None:
    config = build(("a.yaml", ""), ("b.yaml", "# nothing yet\n"), ("c.yaml", "rules:\n"))
    assert config == WatchConfig()


@pytest.mark.parametrize(
    ("cooldown", "seconds"),
    [("90", 90), ("45s", 45), ("5m", 300), ("12h", 43200), ("2d", 172800), ("1h30m", 5400)],
)
def test_durations(cooldown: str, seconds: int) -> None:
    (rule,) = build(("r.yaml", f"rules: [{{id: r, query: x, cooldown: {cooldown}}}]")).rules
    assert rule.cooldown == seconds


# --- the structured form compiles to the same tree as the query ---------------------------------

_STRUCTURED_ENTITIES = """
entities:
  maduro: {aliases: ["Nicolás Maduro", "Maduro"]}
  lavrov: {aliases: ["Sergey Lavrov", "Sergei Lavrov", "Lavrov"]}
"""


@pytest.mark.parametrize(
    ("structured", "query"),
    [
        ("all: [a, b]", "a AND b"),
        ("any: [a, b]", "a OR b"),
        ("none: [a]", "NOT a"),
        ("none: [a, b]", "NOT (a OR b)"),
        ("any: [a, b]\nnone: [c]", "(a OR b) AND NOT c"),
        ("all: [{phrase: security council}]", '"security council"'),
        ('all: [{phrase: "Nicolás Madur*"}]', '"nicolas madur*"'),
        ("all: [{entity: maduro}, release*]", "@maduro AND release*"),
        ("all: [{entity: '@maduro'}]", "@maduro"),
        ("all: [{regex: 'fo+\\d'}]", "/fo+\\d/"),
        (
            "all: [{near: {terms: [{entity: maduro}, release*], within: 3}}]",
            "@maduro NEAR/3 release*",
        ),
        ("all: [{near: {terms: [a, b, c], within: 0}}]", "a NEAR/0 b NEAR/0 c"),
        ("all: [{near: {terms: ['a OR b', {phrase: c d}], within: 2}}]", '(a OR b) NEAR/2 "c d"'),
        ("all: ['a OR b', {any: [c, {all: [d, e]}]}]", "(a OR b) AND (c OR (d e))"),
        ("all: [{none: [x]}, y]", "NOT x AND y"),
        ("all: ['title:a', b]", "title:a b"),
        (
            textwrap.dedent(
                """\
                all:
                  - entity: lavrov
                  - any: [{entity: maduro}, call, {phrase: "phone call"}]
                  - none: [{regex: 'fo+'}]
                  - near: {terms: [{entity: maduro}, release*], within: 3}"""
            ),
            '@lavrov (@maduro OR call OR "phone call") -/fo+/ (@maduro NEAR/3 release*)',
        ),
    ],
)
def test_structured_form_compiles_like_the_query(structured: str, query: str) -> None:
    body = textwrap.indent(structured, "    ")
    text = f"{_STRUCTURED_ENTITIES}rules:\n  - id: s\n{body}\n  - id: q\n    query: '{query}'\n"
    structured_rule, query_rule = build(("r.yaml", text)).rules
    assert structured_rule.expr == query_rule.expr
    assert q.describe(structured_rule.expr) == q.describe(query_rule.expr)


# --- invalid input, each reported as path:line:col ----------------------------------------------


def test_yaml_syntax_error() -> None:
    text = """
    rules:
      - id: a
        query: x: y
    """
    assert problems(("r.yaml", text)) == [
        "r.yaml:3:13: invalid YAML: mapping values are not allowed here"
    ]


def test_yaml_syntax_error_in_one_file_does_not_hide_others() -> None:
    assert problems(
        ("a.yaml", "rules: [\n"),
        ("b.yaml", "rules:\n  - {id: b, query: '(x'}\n"),
    ) == [
        "a.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'",
        "b.yaml:2:21: missing ')' to close this '('",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # The column points at the offending character inside the query.
        ("query: foo AND (bar", "3:20: missing ')' to close this '('"),
        ("query: 'foo AND (bar'", "3:21: missing ')' to close this '('"),
        ('query: "foo AND (bar"', "3:21: missing ')' to close this '('"),
        ("query: foo OR", "3:16: OR needs a term after it"),
        ("query: '  foo OR'", "3:19: OR needs a term after it"),
        # The phrase's quote is written as the escape \" : the column is where the escape starts.
        ('query: "a \\"b c"', '3:15: unterminated phrase: missing closing "'),
        ("query: '\"security council\" AND (x'", "3:36: missing ')' to close this '('"),
        ('query: "\\"security council\\" AND (x"', "3:38: missing ')' to close this '('"),
        ("query: 'it''s AND (x'", "3:23: missing ')' to close this '('"),
        ("query: a NEAR b", "3:14: NEAR needs a distance in tokens, as in NEAR/5"),
        (
            "query: 'titel:x'",
            "3:13: unknown field 'titel:' (fields: title, text, url, source, author)",
        ),
        ("query: '&&'", "3:13: '&&' has no letters or digits to match"),
    ],
)
def test_query_syntax_error_column(line: str, expected: str) -> None:
    text = f"rules:\n  - id: a\n    {line}\n"
    assert problems(("r.yaml", text)) == [f"r.yaml:{expected}"]


def test_query_syntax_error_in_flow_mapping() -> None:
    assert problems(("r.yaml", "rules:\n  - {id: c, query: x OR}\n")) == [
        "r.yaml:2:22: OR needs a term after it"
    ]


def test_query_syntax_error_in_block_scalar() -> None:
    text = """
    rules:
      - id: d
        query: |
          foo AND
          (bar
    """
    assert problems(("r.yaml", text)) == ["r.yaml:5:7: missing ')' to close this '('"]


def test_query_syntax_error_in_structured_string() -> None:
    text = """
    rules:
      - id: a
        all:
          - 'x OR'
          - any: [y, 'z AND']
    """
    assert problems(("r.yaml", text)) == [
        "r.yaml:4:12: OR needs a term after it",
        "r.yaml:5:21: AND needs a term after it",
    ]


def test_unknown_entity() -> None:
    text = """
    entities:
      maduro: {aliases: [Maduro]}
    rules:
      - id: a
        query: 'release* AND @madur0'
      - id: b
        query: '@nobody'
      - id: c
        all: [{entity: madur0}]
    """
    assert problems(("r.yaml", text)) == [
        "r.yaml:5:26: unknown entity @madur0 (did you mean @maduro?)",
        "r.yaml:7:13: unknown entity @nobody",
        "r.yaml:9:20: unknown entity @madur0 (did you mean @maduro?)",
    ]


def test_bad_regex() -> None:
    text = """
    rules:
      - id: a
        query: x OR /a(/
      - id: b
        query: '/(?=x)y/'
      - id: c
        any: [{regex: 'a('}]
    """
    assert problems(("r.yaml", text)) == [
        "r.yaml:3:17: invalid regular expression /a(/: missing ): a(",
        "r.yaml:5:13: invalid regular expression /(?=x)y/: invalid perl operator: (?=",
        "r.yaml:7:19: invalid regular expression /a(/: missing ): a(",
    ]


def test_duplicate_rule_id_across_files_names_both() -> None:
    first = "rules:\n  - id: dup\n    query: x\n"
    second = "# other desk\nrules:\n  - id: other\n    query: y\n  - id: dup\n    query: z\n"
    assert problems(("rules/a.yaml", first), ("rules/b.yaml", second)) == [
        "rules/b.yaml:5:9: duplicate rule id 'dup' (first defined at rules/a.yaml:2:9)"
    ]


def test_duplicate_ids_in_one_file() -> None:
    text = """
    sources:
      - {id: s, type: replay, path: a/}
      - {id: s, type: replay, path: b/}
    channels:
      - {id: c, type: console}
      - {id: c, type: console}
    rules:
      - {id: r, query: x}
      - {id: r, query: y}
    """
    assert problems(("w.yaml", text)) == [
        "w.yaml:3:10: duplicate source id 's' (first defined at w.yaml:2:10)",
        "w.yaml:6:10: duplicate channel id 'c' (first defined at w.yaml:5:10)",
        "w.yaml:9:10: duplicate rule id 'r' (first defined at w.yaml:8:10)",
    ]


def test_duplicate_entity_id_across_files() -> None:
    first = "entities:\n  maduro: {aliases: [Maduro]}\n"
    second = "entities:\n  lavrov: {aliases: [Lavrov]}\n  maduro: {aliases: [Nicolás Maduro]}\n"
    assert problems(("a.yaml", first), ("b.yaml", second)) == [
        "b.yaml:3:11: duplicate entity id 'maduro' (first defined at a.yaml:2:11)"
    ]


def test_duplicate_yaml_key() -> None:
    text = "rules:\n  - id: a\n    query: x\n    query: y\n"
    assert problems(("r.yaml", text)) == [
        "r.yaml:4:5: duplicate key 'query' (first at line 3, column 5)"
    ]


def test_unknown_source_and_channel_references() -> None:
    text = """
    sources:
      - {id: seeds, type: replay, path: seeds/}
    channels:
      - {id: newsroom, type: console}
    rules:
      - id: a
        query: x
        sources: [seeds, sedes]
        channels: [newsroom, pager]
    """
    assert problems(("r.yaml", text)) == [
        "r.yaml:8:22: unknown source 'sedes' (did you mean 'seeds'?)",
        "r.yaml:9:26: unknown channel 'pager'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - id: a\n    querry: x\n",
            "r.yaml:3:5: unknown key 'querry' (did you mean 'query'?)",
        ),
        ("rulez:\n  - id: a\n", "r.yaml:1:1: unknown key 'rulez' (did you mean 'rules'?)"),
        (
            "sources:\n  - {id: s, type: feed, url: 'http://u/', evry: 5m}\n",
            "r.yaml:2:43: unknown key 'evry' (did you mean 'every'?)",
        ),
        (
            "channels:\n  - {id: c, type: slack, webhook: x}\n",
            "r.yaml:2:26: unknown key 'webhook' (did you mean 'webhook_url'?)",
        ),
        (
            "rules:\n  - id: a\n    all: [{frase: x}]\n",
            "r.yaml:3:12: unknown key 'frase' (did you mean 'phrase'?)",
        ),
        (
            "rules:\n  - id: a\n    all: [{near: {terms: [a, b], within: 1, distance: 2}}]\n",
            "r.yaml:3:45: unknown key 'distance' (expected one of: terms, within)",
        ),
        (
            "entities:\n  m: {aliasses: [x]}\n",
            "r.yaml:2:7: unknown key 'aliasses' (did you mean 'aliases'?)",
        ),
    ],
)
def test_unknown_key(text: str, expected: str) -> None:
    assert expected in problems(("r.yaml", text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An unknown key that happens to be the name of the type.
        (
            "channels:\n  - {id: e, type: email, host: h, from: a@b, to: [c@d], email: x@y}\n",
            "r.yaml:2:57: unknown key 'email'",
        ),
        (
            "sources:\n  - {id: f, type: feed, url: 'http://u/', feed: x}\n",
            "r.yaml:2:43: unknown key 'feed'",
        ),
    ],
)
def test_unknown_key_named_like_the_type(text: str, expected: str) -> None:
    (problem,) = problems(("r.yaml", text))
    assert problem.startswith(expected)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "severity: 3",
            "5:15: rules[0].severity: should be 'low', 'normal', 'high' or 'critical'",
        ),
        (
            "severity: urgent",
            "5:15: rules[0].severity: should be 'low', 'normal', 'high' or 'critical'",
        ),
        (
            "cooldown: 2x",
            "5:15: rules[0].cooldown: '2x' is not a duration such as 30s, 5m, 12h or 2d",
        ),
        (
            "cooldown: -5",
            "5:15: rules[0].cooldown: a duration cannot be negative",
        ),
        ("channels: x", "5:15: rules[0].channels: should be a valid list"),
        ("sources: seeds", "5:14: rules[0].sources: should be a valid list"),
        ("enabled: maybe", "5:14: rules[0].enabled: should be a valid boolean"),
        (
            "fields: [title, body]",
            "5:21: rules[0].fields[1]: should be 'title', 'text', 'url', 'source' or 'author'",
        ),
        ("name: [a]", "5:11: rules[0].name: should be a valid string"),
    ],
)
def test_wrong_types(entry: str, expected: str) -> None:
    text = f"rules:\n  - id: a\n    query: x\n    # the entry under test:\n    {entry}\n"
    assert problems(("r.yaml", text)) == [f"r.yaml:{expected}"]


def test_unknown_source_and_channel_types() -> None:
    text = """
    sources:
      - id: s
        type: rss
        url: x
    channels:
      - id: c
        type: pager
    """
    assert problems(("w.yaml", text)) == [
        "w.yaml:3:11: sources[0].type: must be one of replay, feed, wire",
        "w.yaml:7:11: channels[0].type: must be one of console, slack, email, webhook",
    ]


def test_missing_type() -> None:
    text = "sources:\n  - id: s\n    url: x\nchannels:\n  - id: c\n"
    found = problems(("w.yaml", text))
    assert len(found) == 2
    assert found[0].startswith("w.yaml:2:5: sources[0].type")
    assert "replay, feed, wire" in found[0] or "required key is missing" in found[0]
    assert found[1].startswith("w.yaml:5:5: channels[0].type")
    assert "console, slack, email, webhook" in found[1] or "required key is missing" in found[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - query: x\n", ["r.yaml:2:5: rules[0].id: required key is missing"]),
        (
            "rules:\n  - id: a\n    name: no query\n",
            ["r.yaml:2:5: rules[0]: a rule needs 'query' or all/any/none"],
        ),
        (
            "sources:\n  - {id: f, type: feed}\n",
            ["r.yaml:2:5: sources[0].url: required key is missing"],
        ),
        (
            "channels:\n  - id: e\n    type: email\n    host: h\n",
            [
                "r.yaml:2:5: channels[0].from: required key is missing",
                "r.yaml:2:5: channels[0].to: required key is missing",
            ],
        ),
        ("entities:\n  m: {}\n", ["r.yaml:2:6: entities.m.aliases: required key is missing"]),
    ],
)
def test_missing_required_key(text: str, expected: list[str]) -> None:
    assert problems(("r.yaml", text)) == expected


def test_query_and_structured_form_together() -> None:
    text = "rules:\n  - id: a\n    query: x\n    any: [y]\n"
    assert problems(("r.yaml", text)) == [
        "r.yaml:4:5: use either 'query' or all/any/none, not both"
    ]


def test_structured_form_errors() -> None:
    text = """
    rules:
      - id: a
        all:
          - phrase: "&&"
          - near: {terms: [a], within: 2}
          - near: {terms: [a, b], within: x}
          - any: []
          - [a, b]
    """
    assert problems(("r.yaml", text)) == [
        "r.yaml:4:17: '&&' has no letters or digits to match",
        "r.yaml:5:15: 'near' needs 'terms': a list of at least two terms",
        "r.yaml:6:15: 'near' needs 'within': a number of tokens (0 or more)",
        "r.yaml:7:14: 'any' needs a non-empty list",
        "r.yaml:8:9: expected a query string or a mapping with one of: all, any, none, phrase,"
        " entity, regex, near",
    ]


def test_bad_entity_alias() -> None:
    text = "entities:\n  m:\n    aliases: [Maduro, '--']\n"
    assert problems(("r.yaml", text)) == ["r.yaml:3:23: '--' has no letters or digits to match"]


def test_file_must_be_a_mapping() -> None:
    assert problems(("r.yaml", "- a\n- b\n")) == [
        "r.yaml:1:1: the file must be a mapping with sources, entities, rules, channels"
    ]


def test_problem_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        build(("rules/x.yaml", "rules:\n  - id: a\n    query: '@madur0'\n"))
    assert caught.value.problems == [Problem("rules/x.yaml", 3, 13, "unknown entity @madur0")]
    assert isinstance(caught.value, ValueError)


# --- environment variables and secrets ------------------------------------------------------------


def test_env_expansion() -> None:
    text = """
    sources:
      - id: w
        type: wire
        url: https://${HOST}/v1/items
        headers: {Authorization: "Bearer ${TOKEN}", X-Plain: "$TOKEN {TOKEN}"}
    channels:
      - {id: hook, type: webhook, url: "${HOOK_URL}"}
    """
    config = build(
        ("w.yaml", text),
        env={"HOST": "wire.example.org", "TOKEN": SECRET, "HOOK_URL": "https://h/" + SECRET},
    )
    (wire,) = config.sources
    assert isinstance(wire, WireSourceSpec)
    assert wire.url == "https://wire.example.org/v1/items"
    assert wire.headers["Authorization"].get_secret_value() == f"Bearer {SECRET}"
    assert wire.headers["X-Plain"].get_secret_value() == "$TOKEN {TOKEN}"
    hook = config.channel("hook")
    assert isinstance(hook, WebhookChannelSpec)
    assert hook.url.get_secret_value() == "https://h/" + SECRET


def test_env_expansion_comes_only_from_env_argument() -> None:
    text = "channels:\n  - {id: s, type: slack, webhook_url: '${PATH}'}\n"
    assert problems(("c.yaml", text), env={}) == [
        "c.yaml:2:39: environment variable PATH is not set"
    ]


def test_missing_env_variables_are_reported_where_used() -> None:
    text = """
    channels:
      - id: slack
        type: slack
        webhook_url: ${SLACK_WEBHOOK_URL}
      - id: mail
        type: email
        host: ${SMTP_HOST}
        password: "${SMTP_USER}:${SMTP_PASSWORD}"
        from: a@b
        to: [c@d]
    """
    assert problems(("c.yaml", text), env={"SMTP_HOST": "smtp", "SMTP_USER": "u"}) == [
        "c.yaml:4:18: environment variable SLACK_WEBHOOK_URL is not set",
        "c.yaml:8:15: environment variable SMTP_PASSWORD is not set",
    ]


_SECRET_PLACES = {
    "wire headers": "sources:\n  - {id: w, type: wire, url: 'http://u/',"
    " headers: {Authorization: '${S}'}}\n",
    "feed headers": "sources:\n  - {id: f, type: feed, url: 'http://u/',"
    " headers: {Authorization: '${S}'}}\n",
    "slack webhook_url": "channels:\n  - {id: c, type: slack, webhook_url: '${S}'}\n",
    "slack token": "channels:\n  - {id: c, type: slack, token: '${S}', channel: '#desk'}\n",
    "webhook url": "channels:\n  - {id: c, type: webhook, url: 'https://h/${S}'}\n",
    "webhook secret": "channels:\n  - {id: c, type: webhook, url: 'https://h/', secret: '${S}'}\n",
    "email credentials": (
        "channels:\n  - {id: c, type: email, host: h, from: a@b, to: [c@d],"
        " username: '${S}', password: '${S}'}\n"
    ),
}


@pytest.mark.parametrize("text", list(_SECRET_PLACES.values()), ids=list(_SECRET_PLACES))
def test_secrets_never_in_repr(text: str) -> None:
    config = build(("s.yaml", text), env={"S": SECRET})
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


def test_secrets_never_in_error_messages() -> None:
    text = """
    sources:
      - {id: w, type: wire, url: 'http://u/', headers: {Authorization: "Bearer ${S}"}, every: 5x}
    channels:
      - {id: c, type: slack, webhook_url: "${S}", token: "${S}", chanel: x}
      - {id: m, type: email, host: h, from: a@b, to: [], password: "${S}"}
      - {id: h, type: webhook, url: "${S}", secret: "${S}", default: maybe}
    rules:
      - {id: r, query: x, channels: [nope]}
    """
    with pytest.raises(ConfigError) as caught:
        build(("s.yaml", text), env={"S": SECRET})
    assert len(caught.value.problems) == 5
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert all(SECRET not in repr(problem) for problem in caught.value.problems)


def test_full_config_repr_has_no_secret() -> None:
    config = build_config(full_documents(), FULL_ENV)
    assert SECRET not in repr(config)


# --- channels for rules that name none, disabled rules ------------------------------------------


def test_rules_without_channels_go_to_default_channels() -> None:
    text = """
    channels:
      - {id: slack, type: slack, webhook_url: x, default: true}
      - {id: mail, type: email, host: h, from: a@b, to: [c@d]}
      - {id: screen, type: console, default: true}
    rules:
      - {id: plain, query: x}
      - {id: empty, query: x, channels: []}
      - {id: routed, query: x, channels: [mail]}
    """
    config = build(("c.yaml", text))
    assert [(r.id, r.channels) for r in config.rules] == [
        ("plain", ("slack", "screen")),
        ("empty", ("slack", "screen")),
        ("routed", ("mail",)),
    ]
    assert [c.id for c in config.channels] == ["slack", "mail", "screen"]


def test_rules_without_channels_and_no_default_go_to_an_implicit_console() -> None:
    text = """
    channels:
      - {id: mail, type: email, host: h, from: a@b, to: [c@d]}
    rules:
      - {id: plain, query: x}
      - {id: routed, query: x, channels: [mail]}
    """
    config = build(("c.yaml", text))
    assert [(r.id, r.channels) for r in config.rules] == [
        ("plain", ("console",)),
        ("routed", ("mail",)),
    ]
    assert config.channels[-1] == IMPLICIT_CONSOLE
    assert [c.id for c in config.channels] == ["mail", "console"]


def test_no_implicit_console_when_every_rule_has_channels() -> None:
    text = """
    channels:
      - {id: mail, type: email, host: h, from: a@b, to: [c@d]}
    rules:
      - {id: routed, query: x, channels: [mail]}
      - {id: paused, query: x, enabled: false}
    """
    config = build(("c.yaml", text))
    assert [c.id for c in config.channels] == ["mail"]


def test_a_console_channel_named_console_is_not_duplicated() -> None:
    text = (
        "channels:\n  - {id: console, type: console, json: true}\nrules:\n  - {id: r, query: x}\n"
    )
    config = build(("c.yaml", text))
    assert [(r.id, r.channels) for r in config.rules] == [("r", ("console",))]
    assert config.channels == (
        ConsoleChannelSpec(id="console", type="console", json=True, default=False),
    )


def test_disabled_rules_are_left_out() -> None:
    text = """
    rules:
      - {id: active, query: x}
      - {id: paused, query: y, enabled: false}
      - {id: later, query: z, enabled: true}
    """
    assert [r.id for r in build(("r.yaml", text)).rules] == ["active", "later"]


def test_disabled_rules_are_still_checked() -> None:
    text = "rules:\n  - {id: paused, query: '(y', enabled: false}\n"
    assert problems(("r.yaml", text)) == ["r.yaml:2:26: missing ')' to close this '('"]


# --- several problems at once ---------------------------------------------------------------------


def test_several_problems_reported_together_in_file_order() -> None:
    rules = """
    rules:
      - id: a
        query: '@nobody'
        severity: urgent
      - id: b
        querry: x
      - id: c
        query: x
        channels: [pager]
    """
    entities = """
    entities:
      m: {aliases: []}
    """
    sources = "sources:\n  - {id: s, type: rss}\n"
    found = problems(("rules/b.yaml", rules), ("rules/a.yaml", entities), ("rules/c.yaml", sources))
    assert found == [
        "rules/a.yaml:2:16: entities.m.aliases: List should have at least 1 item after validation,"
        " not 0",
        "rules/b.yaml:3:13: unknown entity @nobody",
        "rules/b.yaml:4:15: rules[0].severity: should be 'low', 'normal', 'high' or 'critical'",
        "rules/b.yaml:6:5: unknown key 'querry' (did you mean 'query'?)",
        "rules/b.yaml:9:16: unknown channel 'pager'",
        "rules/c.yaml:2:19: sources[0].type: must be one of replay, feed, wire",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "sources:\n  - {id: s, type: replay, path: p, every: '${TOK}'}\n",
        "rules:\n  - {id: r, query: '@${TOK}'}\n",
    ],
)
def test_values_from_the_environment_never_appear_in_messages(text: str) -> None:
    found = problems(("r.yaml", text), env={"TOK": "s3cr3t-value"})
    assert found
    assert all("s3cr3t-value" not in message for message in found)
    assert any("${TOK}" in message for message in found)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config([("r.yaml", text)], {})
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - {id: x, query: '" + "(" * 40 + "a" + ")" * 40 + "'}\n",
            "r.yaml:2:53: nested more than 32 deep (parentheses, NOT or -)",
        ),
        ("rules:\n  - {id: x, query: '" + "NOT " * 5000 + "a'}\n", "r.yaml:2:149: nested more"),
        ("rules:\n  - {id: x, query: '" + "-" * 5000 + "a'}\n", "r.yaml:2:53: nested more"),
        ("rules: &r\n  - *r\n", "r.yaml:1:8: nested more than 64 deep (a recursive alias?)"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"a{i}: &a{i} [{', '.join(['*a' if not i else f'*a{i - 1}'] * 10)}]\n"
                for i in range(6)
            ),
            "the file expands to more than 100,000 values (aliases?)",
        ),
        (
            "rules:\n  - {id: x, query: a, severity: !!python/name:os.system x}\n",
            "unsupported value",
        ),
        ("rules: " + "x" * 1_000_001 + "\n", "r.yaml:1:1: the file is larger than 1,000,000 bytes"),
    ],
)
def test_hostile_files_are_refused_with_a_position(text: str, expected: str) -> None:
    assert any(problem.startswith(expected) or expected in problem for problem in problems_of(text))


def test_merge_keys_bring_in_defaults_and_written_keys_win() -> None:
    config = build_config(
        [
            (
                "r.yaml",
                "rules:\n"
                "  - &base {id: a, query: maduro, severity: high, cooldown: 6h}\n"
                "  - <<: *base\n"
                "    id: b\n"
                "    severity: low\n",
            )
        ],
        {},
    )
    a, b = config.rules
    assert (b.id, b.severity, b.cooldown) == ("b", "low", 6 * 3600)
    assert a.severity == "high"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "must start with http:// or https:// (this one has file://)"),
        ("ftp://host/feed", "(this one has ftp://)"),
        ("feed://host/feed", "(this one has feed://)"),
        ("example.com/feed", "(this one has no scheme)"),
        ("http:///x", "needs a host after the scheme"),
        ("http://[x/", "not a URL (Invalid IPv6 URL)"),
    ],
)
def test_a_source_url_polling_cannot_fetch_is_refused_by_rules_check(
    url: str, message: str
) -> None:
    for kind in ("feed", "wire"):
        [problem] = problems_of(f"sources:\n  - {{id: s, type: {kind}, url: '{url}'}}\n")
        assert problem.startswith("r.yaml:2:") and "sources[0].url" in problem
        assert message in problem


def test_top_level_x_keys_hold_anchors_for_merge_keys() -> None:
    config = build_config(
        [
            (
                "r.yaml",
                "x-defaults: &d {severity: high, cooldown: 6h}\n"
                "rules:\n"
                "  - <<: *d\n"
                "    id: a\n"
                "    query: maduro\n",
            )
        ],
        {},
    )
    [rule] = config.rules
    assert (rule.severity, rule.cooldown) == ("high", 6 * 3600)


def test_libyaml_reads_rules_to_the_same_values_and_positions_as_pyyaml(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rule files are composed by libyaml when PyYAML has it; every value and the line and
    column it came from are what PyYAML's own parser gives."""
    text = (
        'entities:\n  maduro: {aliases: ["Nicolás Maduro", Maduro]}\n'
        "rules:\n  - id: a\n    query: '@maduro AND release*'\n    tags: [x, 'y z']\n"
        '  - {id: b, query: "東京 NEAR/3 地震", cooldown: 2h}\n'
        "defaults: &d {channels: [console]}\nmore: *d\n"
    )
    assert yaml.__with_libyaml__ and positions.LOADER is yaml.CSafeLoader
    read = []
    for loader in (yaml.CSafeLoader, yaml.SafeLoader):
        monkeypatch.setattr(positions, "LOADER", loader)
        doc = positions.Reader("r.yaml", {}, []).read(text)
        read.append((doc.data, doc.values))
    assert read[0] == read[1] and read[0][0]["rules"][1]["query"] == "東京 NEAR/3 地震"
