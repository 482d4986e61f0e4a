"""``monitor bench match``: matching throughput beside a regex-per-rule baseline.

``rules`` rules built from multi-word names and phrases (``"name" AND (word OR "two words")``,
``"phrase" NEAR/5 word``, ``@entity`` with aliases), and ``items`` articles of about 600 words
that mention a few of the names. The baseline is what a simple tool does: one compiled regex per
rule (lookaheads for AND), tried on every item's normalized text. Both must find the same
matches, or the run says so. Normalizing, fingerprints and term vectors are timed on the way.
"""

from __future__ import annotations

import platform
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.bench.machine import machine, rate
from monitor.core.analysis import strip_boilerplate
from monitor.core.dedup import fingerprint
from monitor.core.frequencies import background_for
from monitor.core.matcher import Matcher
from monitor.core.rules import build_config
from monitor.core.stories import StreamFrequency, evidence, weigh
from monitor.core.text import normalize, tokenize
from monitor.models import Item
from monitor.ops.progress import SILENT, Advance, Progress

WORDS_PER_ITEM = 600
NAMES_PER_ITEM = 6


def _word(rng: random.Random) -> str:
    syllables = ["ka", "lo", "mi", "tren", "vos", "dar", "el", "qui", "sta", "ber", "on", "gal"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))


@dataclass(frozen=True)
class Workload:
    yaml: str
    items: tuple[Item, ...]
    rule_terms: tuple[tuple[tuple[str, ...], ...], ...]  # per rule: AND of OR-groups of phrases


def make_workload(rule_count: int, item_count: int, seed: int) -> Workload:
    """Rules and articles over one invented vocabulary, so nothing depends on a corpus file."""
    rng = random.Random(seed)
    vocabulary = sorted({_word(rng) for _ in range(6000)})
    common, rare = vocabulary[:300], vocabulary[300:]
    names = [f"{rng.choice(rare).title()} {rng.choice(rare).title()}" for _ in range(20000)]
    lines = ["entities:"]
    rules = ["rules:"]
    terms: list[tuple[tuple[str, ...], ...]] = []
    for index in range(rule_count):
        name = names[index % len(names)]
        other, extra = rng.choice(rare), f"{rng.choice(rare)} {rng.choice(rare)}"
        kind = index % 3
        if kind == 0:
            query = f'"{name}" AND ({other} OR "{extra}")'
            terms.append(((name,), (other, extra)))
        elif kind == 1:
            lines.append(f'  e{index}: {{aliases: ["{name}", "{name.split()[1]} {other}"]}}')
            query = f"@e{index} AND {rng.choice(rare)}"
            terms.append(((name, f"{name.split()[1]} {other}"), (query.rsplit(" ", 1)[1],)))
        else:
            query = f'"{name}" AND "{extra}"'
            terms.append(((name,), (extra,)))
        rules.append(f"  - {{id: r{index}, query: '{query}'}}")
    yaml_text = "\n".join([*(lines if len(lines) > 1 else []), *rules]) + "\n"
    items = []
    for index in range(item_count):
        words = [
            rng.choice(common) if rng.random() < 0.7 else rng.choice(rare)
            for _ in range(WORDS_PER_ITEM)
        ]
        for _ in range(NAMES_PER_ITEM):
            words.insert(rng.randrange(len(words)), rng.choice(names[: max(rule_count, 1)]))
        text = ". ".join(" ".join(words[i : i + 15]).capitalize() for i in range(0, len(words), 15))
        items.append(
            Item(id=f"bench:{index}", source="bench", title=" ".join(words[:8]), text=text)
        )
    return Workload(yaml_text, tuple(items), tuple(terms))


def baseline_patterns(workload: Workload) -> list[re.Pattern[str]]:
    """One regex per rule: a lookahead per AND-ed group, alternation inside a group."""
    patterns = []
    for groups in workload.rule_terms:
        parts = []
        for group in groups:
            alternatives = "|".join(re.escape(normalize(phrase)) for phrase in group)
            parts.append(rf"(?=.*?\b(?:{alternatives})\b)")
        patterns.append(re.compile("".join(parts), re.DOTALL))
    return patterns


def run_bench(
    rule_count: int,
    item_count: int,
    *,
    repeat: int = 5,
    seed: int = 1,
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Items per second for normalize, match (automaton) and the regex baseline; medians."""
    baseline_repeat = max(1, repeat // 2)
    with progress.task(f"{rule_count} rules", total=2 + 4 * repeat + baseline_repeat) as advance:
        return _run_bench(rule_count, item_count, repeat, baseline_repeat, seed, advance)


def _run_bench(
    rule_count: int,
    item_count: int,
    repeat: int,
    baseline_repeat: int,
    seed: int,
    advance: Advance,
) -> dict[str, Any]:
    workload = make_workload(rule_count, item_count, seed)
    config = build_config([("bench.yaml", workload.yaml)], {})
    advance(1)
    started = time.perf_counter()
    matcher = Matcher(config.rules)
    build_s = time.perf_counter() - started
    advance(1)
    items = workload.items
    texts = [f"{item.title}\n{item.text}" for item in items]

    normalize_rate, _ = rate(len(items), lambda: [tokenize(t) for t in texts], repeat, advance)
    # Dedup works on the text without boilerplate, tokenized once (the normalize stage).
    background = background_for("en")
    cleaned = [strip_boilerplate(item.text) for item in items]
    tokens = [tokenize(text) for text in cleaned]
    fingerprint_rate, _ = rate(
        len(items), lambda: [fingerprint(t.words) for t in tokens], repeat, advance
    )
    vector_rate, _ = rate(
        len(items),
        lambda: [
            weigh(evidence(i.title, c, text_tokens=t), StreamFrequency(), background)
            for i, c, t in zip(items, cleaned, tokens, strict=True)
        ],
        repeat,
        advance,
    )
    match_rate, found = rate(
        len(items), lambda: [{m.rule for m in matcher.match(i)} for i in items], repeat, advance
    )
    patterns = baseline_patterns(workload)
    # The baseline is slow by design: give it fewer items at large rule counts (rates compare).
    baseline_items = items[: max(5, min(len(items), len(items) * 200 // max(rule_count, 1)))]

    def baseline() -> list[set[str]]:
        out = []
        for item in baseline_items:
            title, text = normalize(item.title), normalize(item.text)
            out.append({f"r{i}" for i, p in enumerate(patterns) if p.match(title) or p.match(text)})
        return out

    baseline_rate, baseline_found = rate(len(baseline_items), baseline, baseline_repeat, advance)
    matched = found if isinstance(found, list) else []
    agree = matched[: len(baseline_items)] == baseline_found
    return {
        "rules": rule_count,
        "items": len(items),
        "baseline_items": len(baseline_items),
        "repeat": repeat,
        "terms": matcher.term_count,
        "build_s": round(build_s, 3),
        "normalize_items_per_s": round(normalize_rate, 1),
        "fingerprint_items_per_s": round(fingerprint_rate, 1),
        "story_terms_items_per_s": round(vector_rate, 1),
        "match_items_per_s": round(match_rate, 1),
        "baseline_match_items_per_s": round(baseline_rate, 2),
        "speedup": round(match_rate / baseline_rate, 1),
        "matches_per_item": round(sum(len(s) for s in matched) / max(len(matched), 1), 2),
        "baseline_agrees": agree,
        "machine": machine(),
        "python": platform.python_version(),
    }


def report(results: Sequence[dict[str, Any]]) -> str:
    """A table of the runs, then how match throughput changes from the first to the last."""
    head = (
        f"{'rules':>7} {'items':>6} {'normalize/s':>12} {'fingerprint/s':>14} {'terms/s':>8} "
        f"{'match/s':>9} {'baseline/s':>11} {'speedup':>8} {'agree':>6}"
    )
    rows = [head]
    for r in results:
        rows.append(
            f"{r['rules']:>7} {r['items']:>6} {r['normalize_items_per_s']:>12.0f} "
            f"{r['fingerprint_items_per_s']:>14.0f} {r['story_terms_items_per_s']:>8.0f} "
            f"{r['match_items_per_s']:>9.0f} {r['baseline_match_items_per_s']:>11.2f} "
            f"{r['speedup']:>7.0f}x {'yes' if r['baseline_agrees'] else 'NO':>6}"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        slowdown = first["match_items_per_s"] / last["match_items_per_s"]
        rows.append(f"match slows {slowdown:.2f}x from {first['rules']} to {last['rules']} rules")
    machine = results[0] if results else {"machine": "?", "python": "?"}
    rows.append(
        f"medians of {results[0]['repeat'] if results else 0} runs; "
        f"{machine['machine']}, Python {machine['python']}"
    )
    return "\n".join(rows)
