"""YAML read with the position of every value and mapping key, so a problem is reported as
``path:line:col`` on the very character it is about (through quotes, escapes and block
scalars). ``${VAR}`` is replaced from the environment passed in, never from the YAML itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import yaml

from monitor.errors import Problem

__all__ = ["Document", "Reader", "YamlPath"]

YamlPath: TypeAlias = tuple[str | int, ...]


@dataclass
class Document:
    """One YAML file as plain data, with the position of every value and mapping key."""

    path: str
    data: Any
    values: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    styles: dict[YamlPath, str | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # value from the environment → ${VAR}

    def redact(self, message: str) -> str:
        """Messages name ``${VAR}``, never the value the environment gave it."""
        for value, name in self.secrets.items():
            message = message.replace(value, name)
        return message

    def locate(self, loc: YamlPath, offset: int) -> tuple[int, int]:
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

    def at(self, loc: YamlPath, *, key: bool = False) -> tuple[int, int]:
        """The position of ``loc``, or of the nearest enclosing value that has one."""
        table = self.keys if key else self.values
        for end in range(len(loc), -1, -1):
            if loc[:end] in table:
                return table[loc[:end]]
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return (1, 1)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


MAX_BYTES = 1_000_000  # a rules file larger than this is refused unread
MAX_VALUES = 100_000  # values a file may expand to, aliases included (an alias bomb stops here)
# libyaml's composer when PyYAML was built with it (its wheels are): the same nodes and marks,
# several times faster (a reload of 10,000 rules spent most of its time composing YAML in
# Python).
LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NESTING = 64  # mappings and sequences nested deeper (a recursive alias) are refused
_MERGE = "tag:yaml.org,2002:merge"


def _composed(text: str) -> yaml.Node | None:
    """The document's node tree, by libyaml; on an error, by PyYAML's own parser again, whose
    messages say more ("expected the node content, but found '<stream end>'")."""
    try:
        return yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError:
        if LOADER is yaml.SafeLoader:
            raise
    return yaml.compose(text, Loader=yaml.SafeLoader)


class _Refused(Exception):
    """The document is refused as a whole; the problem is already recorded."""


class Reader:
    def __init__(self, path: str, env: Mapping[str, str], problems: list[Problem]) -> None:
        self.doc = Document(path, None)
        self.constructor = yaml.SafeLoader("")
        self.env = env
        self.problems = problems
        self.values = 0
        self.nesting = 0

    def read(self, text: str) -> Document:
        if len(text) > MAX_BYTES:
            self.problems.append(
                Problem(self.doc.path, 1, 1, f"the file is larger than {MAX_BYTES:,} bytes")
            )
            return self.doc
        try:
            root = _composed(text)
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
        try:
            self.doc.data = self.convert(root, ()) if root is not None else None
        except _Refused:
            self.doc.data = None
        return self.doc

    def convert(self, node: yaml.Node, loc: YamlPath) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            self.problem(node, f"the file expands to more than {MAX_VALUES:,} values (aliases?)")
            raise _Refused
        self.doc.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                self.problem(node, f"nested more than {MAX_NESTING} deep (a recursive alias?)")
                raise _Refused
            try:
                return self.collection(node, loc)
            finally:
                self.nesting -= 1
        self.doc.styles[loc] = node.style if isinstance(node, yaml.ScalarNode) else None
        value = self.scalar(node)
        if isinstance(value, str) and "${" in value:
            value = self.expand(value, node)
        return value

    def collection(self, node: yaml.MappingNode | yaml.SequenceNode, loc: YamlPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            merged: list[dict[Any, Any]] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:  # <<: *defaults, or <<: [*a, *b]
                    merged.extend(self.merged(value_node, loc))
                    continue
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
            for defaults in merged:  # keys written out win over merged ones, as YAML says
                for key, value in defaults.items():
                    out.setdefault(key, value)
            return out
        return [self.convert(child, (*loc, i)) for i, child in enumerate(node.value)]

    def merged(self, node: yaml.Node, loc: YamlPath) -> list[dict[Any, Any]]:
        """The mappings a merge key (``<<``) brings in; anything else is a problem."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.problem(source, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            out.append(self.convert(source, loc))
        return out

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, "a key must be a plain value")
            return f"<{node.tag}>"
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # a tag SafeLoader does not know (!!python/object…)
            self.problem(node, f"unsupported value: {getattr(exc, 'problem', None) or exc}")
            return None

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
