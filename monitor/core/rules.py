"""YAML documents → one validated watch configuration, every problem as ``path:line:col``.

Files are merged: each may hold ``sources``, ``entities``, ``rules`` and ``channels``. Ids are
unique per kind across all files; a duplicate names both places. ``${VAR}`` in any string is
replaced from the environment passed in (never from the YAML itself), so secrets stay out of
the rule files. Nothing here reads a file or the clock: callers pass ``(path, text)`` pairs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeAlias, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
)

from monitor.core import query as q
from monitor.core.schedule import (
    OFF,
    DigestSchedule,
    QuietHours,
    parse_digest,
    parse_quiet_hours,
)
from monitor.errors import ConfigError, Problem, QuerySyntaxError
from monitor.models import Severity

# --- values -------------------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: object) -> int:
    """``90``, ``"45s"``, ``"5m"``, ``"12h"``, ``"2d"``, ``"1h30m"`` → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 5m, 12h or 2d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        match = _DURATION.fullmatch(text)
        if text and match:
            d, h, m, s = (int(g) if g else 0 for g in match.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
    raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 12h or 2d")


Duration = Annotated[int, BeforeValidator(parse_duration)]


def _check_digest(value: str) -> str:
    _digest_setting(value)
    return value


def _check_quiet(value: str) -> str:
    parse_quiet_hours(value)
    return value


def _digest_off(value: object) -> object:
    return "off" if value is False else value  # YAML reads a bare `off` as false


DigestText = Annotated[str, BeforeValidator(_digest_off), AfterValidator(_check_digest)]
QuietText = Annotated[str, AfterValidator(_check_quiet)]
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
FieldName = Literal["title", "text", "url", "source", "author"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- sources ------------------------------------------------------------------------------------


class ReplaySourceSpec(_Spec):
    """Files in a directory (``seeds/``-style text, feed files, JSON), re-read every ``every``."""

    id: Id
    type: Literal["replay"]
    path: str
    every: Duration = 60
    enabled: bool = True


class FeedSourceSpec(_Spec):
    """An RSS, Atom, RDF or JSON Feed URL, polled on an adaptive schedule."""

    id: Id
    type: Literal["feed"]
    url: str
    every: Duration = 300
    min: Duration = 60
    max: Duration = 3600
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    enabled: bool = True


class WireSourceSpec(_Spec):
    """A JSON wire service: IPTC ninjs, or any API through JMESPath ``mapping``."""

    id: Id
    type: Literal["wire"]
    url: str
    format: Literal["ninjs", "mapping"] = "ninjs"
    mapping: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    every: Duration = 300
    min: Duration = 60
    max: Duration = 3600
    enabled: bool = True


SourceSpec: TypeAlias = Annotated[
    ReplaySourceSpec | FeedSourceSpec | WireSourceSpec, Field(discriminator="type")
]

# --- channels -----------------------------------------------------------------------------------


class _ChannelSpec(_Spec):
    """What every channel accepts besides its own settings."""

    default: bool = False
    digest: DigestText | None = None
    quiet_hours: QuietText | None = None
    uncertain: Literal["resend", "dead_letter"] = "resend"
    operator: bool = False

    @property
    def digest_schedule(self) -> DigestSchedule | None:
        setting = _digest_setting(self.digest)
        return None if setting == "off" else setting

    @property
    def quiet(self) -> QuietHours | None:
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None


class ConsoleChannelSpec(_ChannelSpec):
    """Alerts printed to standard output: a human line each, or JSON lines."""

    id: Id
    type: Literal["console"]
    json_lines: bool = Field(default=False, alias="json")


class SlackChannelSpec(_ChannelSpec):
    id: Id
    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api/"


class EmailChannelSpec(_ChannelSpec):
    model_config = ConfigDict(populate_by_name=True)

    id: Id
    type: Literal["email"]
    host: str
    port: int | None = None
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: SecretStr | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)


class WebhookChannelSpec(_ChannelSpec):
    id: Id
    type: Literal["webhook"]
    url: SecretStr
    secret: SecretStr | None = None


ChannelSpec: TypeAlias = Annotated[
    ConsoleChannelSpec | SlackChannelSpec | EmailChannelSpec | WebhookChannelSpec,
    Field(discriminator="type"),
]

# --- entities and rules -------------------------------------------------------------------------


class EntitySpec(_Spec):
    aliases: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


_DEFAULT_FIELDS: list[FieldName] = ["title", "text"]


class RuleSpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)

    id: Id
    name: str | None = None
    query: str | None = None
    all_: list[Any] | None = Field(default=None, alias="all")
    any_: list[Any] | None = Field(default=None, alias="any")
    none_: list[Any] | None = Field(default=None, alias="none")
    severity: Severity = "normal"
    channels: list[str] | None = None
    cooldown: Annotated[Duration, Field(ge=1)] = 24 * 3600
    sources: list[str] | None = None
    fields: list[FieldName] = Field(default_factory=lambda: _DEFAULT_FIELDS.copy(), min_length=1)
    digest: DigestText | None = None
    enabled: bool = True


_SOURCES = (ReplaySourceSpec, FeedSourceSpec, WireSourceSpec)
_CHANNELS = (ConsoleChannelSpec, SlackChannelSpec, EmailChannelSpec, WebhookChannelSpec)
_TYPES = {
    "sources": tuple(get_args(m.model_fields["type"].annotation)[0] for m in _SOURCES),
    "channels": tuple(get_args(m.model_fields["type"].annotation)[0] for m in _CHANNELS),
}
_SOURCE: TypeAdapter[Any] = TypeAdapter(SourceSpec)
_CHANNEL: TypeAdapter[Any] = TypeAdapter(ChannelSpec)
_RULE = TypeAdapter(RuleSpec)
_ENTITY = TypeAdapter(EntitySpec)

# --- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled watch rule: the expression tree with its fields resolved."""

    id: str
    name: str
    expr: q.Node
    severity: Severity = "normal"
    channels: tuple[str, ...] = ()
    cooldown: int = 24 * 3600
    sources: frozenset[str] | None = None
    origin: str = ""
    digest: DigestSchedule | Literal["off"] | None = None
    """The rule's own digest, over its channels'; "off": its alerts go out at once."""


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Everything the rules directory says, validated and cross-checked."""

    sources: tuple[ReplaySourceSpec | FeedSourceSpec | WireSourceSpec, ...] = ()
    entities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    channels: tuple[
        ConsoleChannelSpec | SlackChannelSpec | EmailChannelSpec | WebhookChannelSpec, ...
    ] = ()
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """Every value taken from the environment, so logs can mask them."""

    def channel(self, channel_id: str) -> ChannelSpec | None:
        return next((c for c in self.channels if c.id == channel_id), None)


IMPLICIT_CONSOLE = ConsoleChannelSpec(id="console", type="console")

# --- YAML with positions ------------------------------------------------------------------------

Path_: TypeAlias = tuple[str | int, ...]


@dataclass
class _Doc:
    """One YAML file as plain data, with the position of every value and mapping key."""

    path: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Path_, str | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # value from the environment → ${VAR}

    def redact(self, message: str) -> str:
        """Messages name ``${VAR}``, never the value the environment gave it."""
        for value, name in self.secrets.items():
            message = message.replace(value, name)
        return message

    def locate(self, loc: Path_, offset: int) -> tuple[int, int]:
        """Line and column of character ``offset`` of the scalar at ``loc``, as written in the
        file: through quotes, escapes, folded lines and block scalars."""
        line, col = self.at(loc)
        style = self.styles.get(loc)
        if style in ("|", ">"):
            return _locate_in_block(self.lines, line, offset) or (line, col)
        row, index = line - 1, col - (0 if style in ("'", '"') else 1)
        count = 0
        while count < offset and row < len(self.lines):
            text = self.lines[row]
            if index >= len(text):  # a line break inside a flow scalar reads as one space
                row += 1
                if row < len(self.lines):
                    index = len(self.lines[row]) - len(self.lines[row].lstrip())
            elif style == '"' and text[index] == "\\":
                index += {"x": 4, "u": 6, "U": 10}.get(text[index + 1 : index + 2], 2)
            elif style == "'" and text[index : index + 2] == "''":
                index += 2
            else:
                index += 1
            count += 1
        return row + 1, index + 1

    def at(self, loc: Path_, *, key: bool = False) -> tuple[int, int]:
        """The position of ``loc``, or of the nearest enclosing value that has one."""
        table = self.keys if key else self.values
        for end in range(len(loc), -1, -1):
            if loc[:end] in table:
                return table[loc[:end]]
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return (1, 1)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Reader:
    def __init__(self, path: str, env: Mapping[str, str], problems: list[Problem]) -> None:
        self.doc = _Doc(path, None)
        self.constructor = yaml.SafeLoader("")
        self.env = env
        self.problems = problems

    def read(self, text: str) -> _Doc:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            reason = exc.problem or exc.context or "invalid YAML"
            self.problems.append(Problem(self.doc.path, line, col, f"invalid YAML: {reason}"))
            return self.doc
        except yaml.YAMLError as exc:
            self.problems.append(Problem(self.doc.path, 1, 1, f"invalid YAML: {exc}"))
            return self.doc
        self.doc.lines = text.splitlines()
        self.doc.data = self.convert(root, ()) if root is not None else None
        return self.doc

    def convert(self, node: yaml.Node, loc: Path_) -> Any:
        self.doc.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                key_loc = (*loc, str(key))
                if key in out:
                    line, col = self.doc.keys[key_loc]
                    self.problem(
                        key_node, f"duplicate key '{key}' (first at line {line}, column {col})"
                    )
                    continue
                self.doc.keys[key_loc] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.convert(value_node, key_loc)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(child, (*loc, i)) for i, child in enumerate(node.value)]
        self.doc.styles[loc] = node.style if isinstance(node, yaml.ScalarNode) else None
        value = self.scalar(node)
        if isinstance(value, str) and "${" in value:
            value = self.expand(value, node)
        return value

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, "a key must be a plain value")
            return f"<{node.tag}>"
        return self.constructor.construct_object(node, deep=True)

    def expand(self, value: str, node: yaml.Node) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                self.problem(node, f"environment variable {name} is not set")
                return ""
            value = self.env[name]
            if len(value) >= 4:
                self.doc.secrets[value] = match.group(0)
            return value

        return _ENV.sub(substitute, value)

    def problem(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.doc.path, mark.line + 1, mark.column + 1, message))


def _locate_in_block(lines: list[str], line: int, offset: int) -> tuple[int, int] | None:
    """Position of ``offset`` in a ``|`` or ``>`` block scalar whose indicator is on ``line``."""
    rows = range(line, len(lines))  # the content starts on the line after the indicator
    indents = [len(lines[r]) - len(lines[r].lstrip()) for r in rows if lines[r].strip()]
    if not indents:
        return None
    indent, count = indents[0], 0
    for row in rows:
        body = lines[row][indent:]
        if lines[row].strip() and len(lines[row]) - len(lines[row].lstrip()) < indent:
            break  # dedented: the scalar has ended
        if offset - count <= len(body):
            return row + 1, indent + offset - count + 1
        count += len(body) + 1
    return None


# --- building -----------------------------------------------------------------------------------

_TOP = ("sources", "entities", "rules", "channels")


class _Builder:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []
        self.first_seen: dict[tuple[str, str], str] = {}
        self.sources: list[tuple[_Doc, Path_, Any]] = []
        self.channels: list[tuple[_Doc, Path_, Any]] = []
        self.rules: list[tuple[_Doc, Path_, RuleSpec]] = []
        self.entities: dict[str, tuple[str, ...]] = {}
        self.unchecked: list[tuple[_Doc, Path_, str]] = []
        self.secrets: set[str] = set()

    def error(self, doc: _Doc, loc: Path_, message: str, *, key: bool = False) -> None:
        line, col = doc.at(loc, key=key)
        self.problems.append(Problem(doc.path, line, col, doc.redact(message)))

    def unique(self, kind: str, ident: str, doc: _Doc, loc: Path_) -> bool:
        line, col = doc.at(loc)
        here = f"{doc.path}:{line}:{col}"
        first = self.first_seen.setdefault((kind, ident), here)
        if first != here:
            self.error(doc, loc, f"duplicate {kind} id '{ident}' (first defined at {first})")
            return False
        return True

    def add_document(self, path: str, text: str) -> None:
        doc = _Reader(path, self.env, self.problems).read(text)
        self.secrets.update(doc.secrets)
        if doc.data is None:
            return
        if not isinstance(doc.data, dict):
            self.error(
                doc, (), "the file must be a mapping with sources, entities, rules, channels"
            )
            return
        for key, value in doc.data.items():
            if key not in _TOP:
                self.error(doc, (key,), _unknown_key(str(key), _TOP), key=True)
            elif value is not None:
                getattr(self, f"collect_{key}")(doc, value)

    def collect_list(
        self, doc: _Doc, kind: str, value: Any
    ) -> Iterable[tuple[Path_, dict[str, Any]]]:
        if not isinstance(value, list):
            self.error(doc, (kind,), f"'{kind}' must be a list")
            return
        for i, element in enumerate(value):
            loc: Path_ = (kind, i)
            if not isinstance(element, dict):
                self.error(doc, loc, f"each entry of '{kind}' must be a mapping")
                continue
            ident = element.get("id")
            if isinstance(ident, str) and not self.unique(kind[:-1], ident, doc, (*loc, "id")):
                continue
            yield loc, element

    def collect_sources(self, doc: _Doc, value: Any) -> None:
        for loc, element in self.collect_list(doc, "sources", value):
            spec = self.validate(_SOURCE, element, doc, loc, _keys_by_type(element, _SOURCES))
            if spec is not None:
                self.sources.append((doc, loc, spec))

    def collect_channels(self, doc: _Doc, value: Any) -> None:
        for loc, element in self.collect_list(doc, "channels", value):
            spec = self.validate(_CHANNEL, element, doc, loc, _keys_by_type(element, _CHANNELS))
            if spec is not None:
                self.channels.append((doc, loc, spec))

    def collect_rules(self, doc: _Doc, value: Any) -> None:
        for loc, element in self.collect_list(doc, "rules", value):
            spec = self.validate(_RULE, element, doc, loc, _keys(RuleSpec))
            if spec is not None:
                self.rules.append((doc, loc, spec))
            elif isinstance(element.get("query"), str):
                # Still check the query, once every file's entities are known.
                self.unchecked.append((doc, (*loc, "query"), element["query"]))

    def collect_entities(self, doc: _Doc, value: Any) -> None:
        if not isinstance(value, dict):
            self.error(doc, ("entities",), "'entities' must be a mapping of id to aliases")
            return
        for ident, body in value.items():
            loc: Path_ = ("entities", str(ident))
            if not isinstance(ident, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", ident):
                self.error(doc, loc, f"invalid entity id {ident!r}", key=True)
                continue
            if not self.unique("entity", ident, doc, loc):
                continue
            spec = self.validate(_ENTITY, body, doc, loc, _keys(EntitySpec))
            if spec is None:
                continue
            for i, alias in enumerate(spec.aliases):
                try:
                    q.make_term(alias)
                except QuerySyntaxError as exc:
                    self.error(doc, (*loc, "aliases", i), exc.message)
                    break
            else:
                self.entities[ident] = tuple(spec.aliases)

    def validate(
        self, adapter: TypeAdapter[Any], data: Any, doc: _Doc, loc: Path_, allowed: Sequence[str]
    ) -> Any:
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                self.report(err, data, doc, loc, allowed)
            return None

    def report(self, err: Any, data: Any, doc: _Doc, loc: Path_, allowed: Sequence[str]) -> None:
        raw_loc = tuple(err["loc"])
        if raw_loc and isinstance(data, dict) and raw_loc[0] == data.get("type"):
            raw_loc = raw_loc[1:]  # pydantic names the union member first; it is not a key
        where = (*loc, *raw_loc)
        name = _dotted(where)
        if err["type"] == "extra_forbidden":
            self.error(doc, where, _unknown_key(str(raw_loc[-1]), allowed), key=True)
        elif err["type"] == "missing":
            self.error(doc, loc, f"{name}: required key is missing")
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            kinds = ", ".join(_TYPES.get(str(loc[0]), ()))
            missing = "required key is missing: it " if err["type"] == "union_tag_not_found" else ""
            self.error(doc, (*where, "type"), f"{name}.type: {missing}must be one of {kinds}")
        else:
            message = (
                err["msg"].replace("Input should be", "should be").replace("Value error, ", "")
            )
            self.error(doc, where, f"{name}: {message}")

    def build(self) -> WatchConfig:
        source_ids = {spec.id for _, _, spec in self.sources}
        channels = [spec for _, _, spec in self.channels]
        channel_ids = {spec.id for spec in channels}
        defaults = tuple(c.id for c in channels if c.default)
        rules: list[Rule] = []
        needs_console = False
        for doc, loc, spec in self.rules:
            rule = self.compile_rule(doc, loc, spec, source_ids, channel_ids, defaults)
            if rule is not None and spec.enabled:
                rules.append(rule)
                needs_console |= rule.channels == (IMPLICIT_CONSOLE.id,)
        for doc, loc, text in self.unchecked:
            self.compile_query(doc, loc, text)
        if needs_console and IMPLICIT_CONSOLE.id not in channel_ids:
            channels.append(IMPLICIT_CONSOLE)
        if self.problems:
            raise ConfigError(self.problems)
        return WatchConfig(
            sources=tuple(spec for _, _, spec in self.sources),
            entities=dict(self.entities),
            rules=tuple(rules),
            channels=tuple(channels),
            secrets=frozenset(self.secrets),
        )

    def compile_rule(
        self,
        doc: _Doc,
        loc: Path_,
        spec: RuleSpec,
        source_ids: set[str],
        channel_ids: set[str],
        defaults: tuple[str, ...],
    ) -> Rule | None:
        before = len(self.problems)
        for i, ref in enumerate(spec.sources or ()):
            if ref not in source_ids:
                self.error(doc, (*loc, "sources", i), _unknown_ref("source", ref, source_ids))
        for i, ref in enumerate(spec.channels or ()):
            if ref not in channel_ids:
                self.error(doc, (*loc, "channels", i), _unknown_ref("channel", ref, channel_ids))
        structured = {"all": spec.all_, "any": spec.any_, "none": spec.none_}
        given = [k for k, v in structured.items() if v is not None]
        expr: q.Node | None = None
        if spec.query is not None and given:
            self.error(
                doc, (*loc, given[0]), "use either 'query' or all/any/none, not both", key=True
            )
        elif spec.query is not None:
            expr = self.compile_query(doc, (*loc, "query"), spec.query)
        elif given:
            expr = self.compile_structured(doc, loc, structured)
        else:
            self.error(doc, loc, f"rules[{loc[1]}]: a rule needs 'query' or all/any/none")
        if expr is None or len(self.problems) > before:
            return None
        fields = frozenset(spec.fields)
        line, _ = doc.at(loc)
        return Rule(
            id=spec.id,
            name=spec.name or spec.id,
            expr=q.restrict(expr, fields),
            severity=spec.severity,
            channels=tuple(spec.channels) if spec.channels else defaults or (IMPLICIT_CONSOLE.id,),
            cooldown=spec.cooldown,
            sources=frozenset(spec.sources) if spec.sources else None,
            origin=f"{doc.path}:{line}",
            digest=_digest_setting(spec.digest),
        )

    def compile_query(self, doc: _Doc, loc: Path_, text: str) -> q.Node | None:
        try:
            return q.parse(text, self.entities)
        except QuerySyntaxError as exc:
            line, col = doc.locate(loc, exc.offset)
            self.problems.append(Problem(doc.path, line, col, doc.redact(exc.message)))
            return None

    def compile_structured(self, doc: _Doc, loc: Path_, parts: dict[str, Any]) -> q.Node | None:
        children: list[q.Node] = []
        for key, value in parts.items():
            if value is not None:
                node = self.structured(doc, (*loc, key), {key: value})
                if node is None:
                    return None
                children.append(node)
        return q.make_and(children)

    def structured(self, doc: _Doc, loc: Path_, value: Any) -> q.Node | None:
        """One node of the structured form: a string is a query; a mapping has one key."""
        if isinstance(value, str):
            return self.compile_query(doc, loc, value)
        if not isinstance(value, dict) or len(value) != 1:
            self.error(doc, loc, "expected a query string or a mapping with one of: " + _LEAVES)
            return None
        ((key, body),) = value.items()
        here = loc if key in ("all", "any", "none") and loc[-1] == key else (*loc, key)
        try:
            if key in ("all", "any", "none"):
                if not isinstance(body, list) or not body:
                    self.error(doc, here, f"'{key}' needs a non-empty list")
                    return None
                kids = [self.structured(doc, (*here, i), item) for i, item in enumerate(body)]
                if any(k is None for k in kids):
                    return None
                nodes = [k for k in kids if k is not None]
                if key == "all":
                    return q.make_and(nodes)
                return q.make_or(nodes) if key == "any" else q.Not(q.make_or(nodes))
            if key == "phrase" and isinstance(body, str):
                return q.make_term(body)
            if key == "entity" and isinstance(body, str):
                return q.make_entity(body.removeprefix("@"), self.entities)
            if key == "regex" and isinstance(body, str):
                return q.make_regex(body)
            if key == "near" and isinstance(body, dict):
                return self.structured_near(doc, here, body)
        except QuerySyntaxError as exc:
            self.error(doc, here, exc.message)
            return None
        if key in _LEAF_KEYS:
            self.error(doc, here, f"'{key}' needs {_LEAF_KEYS[key]}")
        else:
            self.error(doc, (*loc, key), _unknown_key(str(key), tuple(_LEAF_KEYS)), key=True)
        return None

    def structured_near(self, doc: _Doc, loc: Path_, body: dict[str, Any]) -> q.Node | None:
        terms, within = body.get("terms"), body.get("within")
        extra = set(body) - {"terms", "within"}
        if extra:
            key = sorted(extra)[0]
            self.error(doc, (*loc, key), _unknown_key(key, ("terms", "within")), key=True)
            return None
        if not isinstance(terms, list) or len(terms) < 2:
            self.error(doc, loc, "'near' needs 'terms': a list of at least two terms")
            return None
        if not isinstance(within, int) or isinstance(within, bool) or within < 0:
            self.error(doc, loc, "'near' needs 'within': a number of tokens (0 or more)")
            return None
        kids = [self.structured(doc, (*loc, "terms", i), t) for i, t in enumerate(terms)]
        if any(k is None for k in kids):
            return None
        nodes = [k for k in kids if k is not None]
        node = nodes[0]
        for nxt in nodes[1:]:
            node = q.make_near(node, nxt, within)
        return node


_LEAF_KEYS = {
    "all": "a list",
    "any": "a list",
    "none": "a list",
    "phrase": "a string",
    "entity": "an entity id",
    "regex": "a regular expression",
    "near": "a mapping with 'terms' and 'within'",
}
_LEAVES = ", ".join(_LEAF_KEYS)


def _digest_setting(text: str | None) -> DigestSchedule | Literal["off"] | None:
    """A ``digest:`` value: its schedule, "off" (send at once), or None when not set."""
    if text is None:
        return None
    return "off" if text.strip().lower() in OFF else parse_digest(text)


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f.alias or name for name, f in model.model_fields.items())


def _keys_by_type(data: dict[str, Any], models: Sequence[type[BaseModel]]) -> tuple[str, ...]:
    for model in models:
        if data.get("type") in get_args(model.model_fields["type"].annotation):
            return _keys(model)
    return ("id", "type")


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = (
        f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
    )
    return f"unknown key '{key}'{hint}"


def _unknown_ref(kind: str, ref: str, known: set[str]) -> str:
    close = difflib.get_close_matches(ref, sorted(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{ref}'{hint}"


def _dotted(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def build_config(documents: Iterable[tuple[str, str]], env: Mapping[str, str]) -> WatchConfig:
    """Validate and merge ``(path, yaml_text)`` documents; raise ``ConfigError`` listing all
    problems, each ``path:line:col: message``."""
    builder = _Builder(env)
    for path, text in documents:
        builder.add_document(path, text)
    return builder.build()
