"""Adding sources to a rule file without disturbing it: its comments, order and layout stay
(ruamel.yaml's round trip), and the whole rules directory must still validate with the change
before the file is written (atomically: a reload never sees half a file).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.app.config_files import environment, rule_files
from monitor.core.rules import WatchConfig, build_config

_ID_PART = re.compile(r"[^a-z0-9]+")


def source_id(url: str, taken: set[str]) -> str:
    """An id for a feed at ``url``: its host without ``www.``, in lowercase words joined by
    dashes (``www.theguardian.com`` → ``theguardian-com``), made unique against ``taken``."""
    host = (urlsplit(url).hostname or "feed").removeprefix("www.")
    base = _ID_PART.sub("-", host.lower()).strip("-") or "feed"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def sources_file(directory: Path) -> Path:
    """The file new sources go to: the first rule file with a ``sources:`` key, else
    ``sources.yaml`` in the directory."""
    for path in rule_files(directory):
        if re.search(r"^sources\s*:", path.read_text(encoding="utf-8"), re.MULTILINE):
            return path
    return directory / "sources.yaml"


def _yaml() -> Any:
    from ruamel.yaml import YAML  # only these commands need it

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def with_sources(text: str, entries: Sequence[dict[str, Any]]) -> str:
    """``text`` (a rule file) with ``entries`` appended to its ``sources`` list (created when
    missing); comments and the order of everything else kept."""
    yaml = _yaml()
    document = yaml.load(text) if text.strip() else None
    if document is None:
        from ruamel.yaml.comments import CommentedMap

        document = CommentedMap()
    if document.get("sources") is None:
        document["sources"] = []
    for entry in entries:
        document["sources"].append(dict(entry))
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def validated(directory: Path, changed: Path, text: str) -> WatchConfig:
    """The configuration of ``directory`` with ``changed`` holding ``text``; ``ConfigError``
    listing every problem when it would not load."""
    documents = [
        (str(path), path.read_text(encoding="utf-8"))
        for path in rule_files(directory)
        if path.resolve() != changed.resolve()
    ]
    documents.append((str(changed), text))
    return build_config(documents, environment())


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (the watcher never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_sources(
    directory: Path, entries: Sequence[dict[str, Any]], file: Path | None = None
) -> tuple[Path, WatchConfig]:
    """Append ``entries`` to the sources of ``file`` (default: ``sources_file``) if the rules
    still validate with them; the file written and the configuration it gives."""
    target = file or sources_file(directory)
    before = target.read_text(encoding="utf-8") if target.exists() else ""
    text = with_sources(before, entries)
    config = validated(directory, target, text)
    write_atomically(target, text)
    return target, config
