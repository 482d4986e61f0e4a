"""YAML documents → one validated watch configuration, every problem as ``path:line:col``.

Files are merged: each may hold ``sources``, ``entities``, ``rules`` and ``channels``. Ids are
unique per kind across all files; a duplicate names both places. ``${VAR}`` in any string is
replaced from the environment passed in (never from the YAML itself), so secrets stay out of
the rule files. Nothing here reads a file or the clock: callers pass ``(path, text)`` pairs.
The schema is ``monitor/core/config.py``; YAML with positions ``monitor/core/positions.py``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from monitor.core import query as q
from monitor.core.config import (
    CHANNEL_ADAPTER,
    CHANNEL_SPECS,
    ENTITY_ADAPTER,
    RULE_ADAPTER,
    SOURCE_ADAPTER,
    SOURCE_SPECS,
    SPEC_TYPES,
    ChannelSpec,
    ConsoleChannelSpec,
    EmailChannelSpec,
    EntitySpec,
    FeedSourceSpec,
    Followups,
    ReplaySourceSpec,
    RuleSpec,
    SlackChannelSpec,
    WebhookChannelSpec,
    WireSourceSpec,
    digest_setting,
)
from monitor.core.positions import Document, Reader, YamlPath
from monitor.core.schedule import DigestSchedule
from monitor.errors import ConfigError, Problem, QuerySyntaxError
from monitor.models import Severity

__all__ = ["IMPLICIT_CONSOLE", "Rule", "WatchConfig", "build_config"]

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
    followups: Followups = "thread"
    """Later reports of a story this rule alerted on: in its thread, as alerts, or none."""


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
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    """What is valid but probably not meant (``rules check`` shows them, exit 0)."""

    def channel(self, channel_id: str) -> ChannelSpec | None:
        return next((c for c in self.channels if c.id == channel_id), None)


IMPLICIT_CONSOLE = ConsoleChannelSpec(id="console", type="console")


# --- building -----------------------------------------------------------------------------------

_TOP = ("sources", "entities", "rules", "channels")


class _Builder:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.first_seen: dict[tuple[str, str], str] = {}
        self.sources: list[tuple[Document, YamlPath, Any]] = []
        self.channels: list[tuple[Document, YamlPath, Any]] = []
        self.rules: list[tuple[Document, YamlPath, RuleSpec]] = []
        self.entities: dict[str, tuple[str, ...]] = {}
        self.unchecked: list[tuple[Document, YamlPath, str]] = []
        self.secrets: set[str] = set()

    def error(self, doc: Document, loc: YamlPath, message: str, *, key: bool = False) -> None:
        line, col = doc.at(loc, key=key)
        self.problems.append(Problem(doc.path, line, col, doc.redact(message)))

    def unique(self, kind: str, ident: str, doc: Document, loc: YamlPath) -> bool:
        line, col = doc.at(loc)
        here = f"{doc.path}:{line}:{col}"
        first = self.first_seen.setdefault((kind, ident), here)
        if first != here:
            self.error(doc, loc, f"duplicate {kind} id '{ident}' (first defined at {first})")
            return False
        return True

    def add_document(self, path: str, text: str) -> None:
        doc = Reader(path, self.env, self.problems).read(text)
        self.secrets.update(doc.secrets)
        if doc.data is None:
            return
        if not isinstance(doc.data, dict):
            self.error(
                doc, (), "the file must be a mapping with sources, entities, rules, channels"
            )
            return
        for key, value in doc.data.items():
            if isinstance(key, str) and key.startswith("x-"):
                continue  # a place for YAML anchors (x-defaults: &d …), as in Compose files
            if key not in _TOP:
                self.error(doc, (key,), _unknown_key(str(key), _TOP), key=True)
            elif value is not None:
                getattr(self, f"collect_{key}")(doc, value)

    def collect_list(
        self, doc: Document, kind: str, value: Any
    ) -> Iterable[tuple[YamlPath, dict[str, Any]]]:
        if not isinstance(value, list):
            self.error(doc, (kind,), f"'{kind}' must be a list")
            return
        for i, element in enumerate(value):
            loc: YamlPath = (kind, i)
            if not isinstance(element, dict):
                self.error(doc, loc, f"each entry of '{kind}' must be a mapping")
                continue
            ident = element.get("id")
            if isinstance(ident, str) and not self.unique(kind[:-1], ident, doc, (*loc, "id")):
                continue
            yield loc, element

    def collect_sources(self, doc: Document, value: Any) -> None:
        for loc, element in self.collect_list(doc, "sources", value):
            spec = self.validate(
                SOURCE_ADAPTER, element, doc, loc, _keys_by_type(element, SOURCE_SPECS)
            )
            if spec is not None:
                self.sources.append((doc, loc, spec))

    def collect_channels(self, doc: Document, value: Any) -> None:
        for loc, element in self.collect_list(doc, "channels", value):
            spec = self.validate(
                CHANNEL_ADAPTER, element, doc, loc, _keys_by_type(element, CHANNEL_SPECS)
            )
            if spec is not None:
                self.channels.append((doc, loc, spec))

    def collect_rules(self, doc: Document, value: Any) -> None:
        for loc, element in self.collect_list(doc, "rules", value):
            spec = self.validate(RULE_ADAPTER, element, doc, loc, _keys(RuleSpec))
            if spec is not None:
                self.rules.append((doc, loc, spec))
            elif isinstance(element.get("query"), str):
                # Still check the query, once every file's entities are known.
                self.unchecked.append((doc, (*loc, "query"), element["query"]))

    def collect_entities(self, doc: Document, value: Any) -> None:
        if not isinstance(value, dict):
            self.error(doc, ("entities",), "'entities' must be a mapping of id to aliases")
            return
        for ident, body in value.items():
            loc: YamlPath = ("entities", str(ident))
            if not isinstance(ident, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", ident):
                self.error(doc, loc, f"invalid entity id {ident!r}", key=True)
                continue
            if not self.unique("entity", ident, doc, loc):
                continue
            spec = self.validate(ENTITY_ADAPTER, body, doc, loc, _keys(EntitySpec))
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
        self,
        adapter: TypeAdapter[Any],
        data: Any,
        doc: Document,
        loc: YamlPath,
        allowed: Sequence[str],
    ) -> Any:
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                self.report(err, data, doc, loc, allowed)
            return None

    def report(
        self, err: Any, data: Any, doc: Document, loc: YamlPath, allowed: Sequence[str]
    ) -> None:
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
            kinds = ", ".join(SPEC_TYPES.get(str(loc[0]), ()))
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
            warnings=tuple(self.warnings),
        )

    def compile_rule(
        self,
        doc: Document,
        loc: YamlPath,
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
            digest=digest_setting(spec.digest),
            followups=spec.followups,
        )

    def compile_query(self, doc: Document, loc: YamlPath, text: str) -> q.Node | None:
        try:
            node = q.parse(text, self.entities)
        except QuerySyntaxError as exc:
            line, col = doc.locate(loc, exc.offset)
            self.problems.append(Problem(doc.path, line, col, doc.redact(exc.message)))
            return None
        for offset, message in q.lint(text):
            line, col = doc.locate(loc, offset)
            self.warnings.append(Problem(doc.path, line, col, "warning: " + doc.redact(message)))
        return node

    def compile_structured(
        self, doc: Document, loc: YamlPath, parts: dict[str, Any]
    ) -> q.Node | None:
        children: list[q.Node] = []
        for key, value in parts.items():
            if value is not None:
                node = self.structured(doc, (*loc, key), {key: value})
                if node is None:
                    return None
                children.append(node)
        return q.make_and(children)

    def structured(self, doc: Document, loc: YamlPath, value: Any) -> q.Node | None:
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

    def structured_near(self, doc: Document, loc: YamlPath, body: dict[str, Any]) -> q.Node | None:
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


def _dotted(loc: YamlPath) -> str:
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
