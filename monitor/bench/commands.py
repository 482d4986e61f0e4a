"""``monitor bench``: measured throughput and quality, each beside a baseline in the same run.

The heavy modules of each bench are imported by its command only, so ``monitor --help`` stays
fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.ops.progress import Progress, progress_for


@click.group()
def bench() -> None:
    """Measured throughput and quality, each beside a baseline in the same run (medians).

    Each bench prints one JSON object per result with --json.
    """


json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per result.")
repeat_option = click.option(
    "--repeat", default=5, show_default=True, help="Runs per measure; medians shown."
)
seed_option = click.option("--seed", default=1, show_default=True, help="Seed of the workload.")
items_option = click.option(
    "--items",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Articles to process (JSON lines with title and text); else generated ones.",
)
rules_option = click.option(
    "--rules", "rule_count", default=100, show_default=True, help="Generated rules."
)
baseline_option = click.option(
    "--baseline",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Another checkout, measured the same way in the same run.",
)
count_option = click.option("--count", default=2000, show_default=True, help="Articles to process.")


def _bench_progress() -> Progress:
    return progress_for(prefix="bench: ")


@bench.command(name="match")
@click.option(
    "--rules",
    "rule_counts",
    default="100,1000,10000",
    show_default=True,
    help="Comma-separated rule counts to measure.",
)
@click.option("--items", "item_count", default=200, show_default=True, help="Articles per run.")
@repeat_option
@seed_option
@json_option
def bench_match(rule_counts: str, item_count: int, repeat: int, seed: int, as_json: bool) -> None:
    """Normalize, fingerprint, match: the automaton against a regex-per-rule baseline."""
    from monitor.bench.match import report, run_bench

    counts = [int(part) for part in rule_counts.split(",") if part.strip()]
    progress = _bench_progress()
    results = [
        run_bench(n, item_count, repeat=repeat, seed=seed, progress=progress) for n in counts
    ]
    if as_json:
        for result in results:
            click.echo(json.dumps(result))
    else:
        click.echo(report(results))


@bench.command(name="parse")
@click.option(
    "--documents",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Feed documents (RSS and Atom alternately).",
)
@click.option(
    "--entries", default=100, show_default=True, type=click.IntRange(min=1), help="Per document."
)
@repeat_option
@seed_option
@json_option
def bench_parse(documents: int, entries: int, repeat: int, seed: int, as_json: bool) -> None:
    """Feed parsing in entries/s: parse_feed beside feedparser's defaults."""
    from monitor.bench.parse import parse_report, run_parse_bench

    result = run_parse_bench(
        documents, entries, repeat=repeat, seed=seed, progress=_bench_progress()
    )
    click.echo(json.dumps(result) if as_json else parse_report(result))


@bench.command(name="poll")
@click.option(
    "--feeds", default=1000, show_default=True, type=click.IntRange(min=1), help="Feeds polled."
)
@click.option(
    "--entries", default=25, show_default=True, type=click.IntRange(min=1), help="Per feed."
)
@click.option(
    "--ports",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Ports of 127.0.0.1 the feeds are spread over (hosts, to the client).",
)
@click.option(
    "--in-flight",
    default=None,
    type=click.IntRange(min=1),
    help="At most this many polls at once  [default: all, as run --once]",
)
@seed_option
@json_option
def bench_poll(
    feeds: int, entries: int, ports: int, in_flight: int | None, seed: int, as_json: bool
) -> None:
    """One poll cycle of the daemon on a local feed server, 95% of feeds answering 304."""
    from monitor.bench.poll import run_sources_bench, sources_report

    result = run_sources_bench(
        feeds,
        entries=entries,
        ports=ports,
        seed=seed,
        in_flight=in_flight,
        progress=_bench_progress(),
    )
    click.echo(json.dumps(result) if as_json else sources_report(result))


@bench.command(name="dispatch")
@click.option("--rate", default=100.0, show_default=True, help="Alerts per second.")
@click.option("--seconds", default=10.0, show_default=True, help="How long.")
@click.option(
    "--process",
    "busy",
    is_flag=True,
    help="Run the process role in the same process meanwhile, as fast as it goes.",
)
@click.option(
    "--process-worker",
    "apart",
    is_flag=True,
    help="Run it in a worker process instead, as the daemon does beside other roles.",
)
@items_option
@count_option
@rules_option
@seed_option
@json_option
def bench_dispatch(rate: float, seconds: float, busy: bool, apart: bool, path: str | None,
                   count: int, rule_count: int, seed: int, as_json: bool) -> None:  # fmt: skip
    """Latency from outbox entry to send call, alerts at --rate per second (with --process,
    while the process role is saturated in the same event loop; with --process-worker, in a
    worker process)."""
    from monitor.bench.dispatch import dispatch_report, run_dispatch_bench
    from monitor.bench.process import _articles

    load = _articles(path, count, rule_count, seed) if busy or apart else None
    result = run_dispatch_bench(rate, seconds, _bench_progress(), load, apart)
    click.echo(json.dumps(result) if as_json else dispatch_report(result))


@bench.command(name="dedup")
@click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def bench_dedup(pairs_file: Path, as_json: bool) -> None:
    """Precision and recall of duplicates and stories on labelled pairs (JSONL)."""
    from monitor.bench.dedup import dedup_report, evaluate, load_pairs, measure

    measured = measure(load_pairs(pairs_file))
    result = evaluate(measured)
    click.echo(json.dumps(result) if as_json else dedup_report(result, measured))


@bench.command(name="process")
@items_option
@count_option
@rules_option
@baseline_option
@repeat_option
@seed_option
@json_option
def bench_process(path: str | None, count: int, rule_count: int, baseline: Path | None,
                  repeat: int, seed: int, as_json: bool) -> None:  # fmt: skip
    """The process role on a private Redis: CPU-seconds, commands, round trips, bytes and
    memory per item, counted by the server."""
    from monitor.bench.process import baseline as run_baseline
    from monitor.bench.process import measure
    from monitor.bench.process import report as process_report

    arguments = ["--count", str(count), "--rules", str(rule_count), "--seed", str(seed)]
    arguments += ["--repeat", str(repeat), *(["--items", str(path)] if path else [])]
    before = run_baseline(baseline, arguments) if baseline is not None else None
    current = measure(path, count, rule_count, seed, repeat=repeat)
    if as_json:
        click.echo(json.dumps({**current, "baseline": before}))
    else:
        click.echo(process_report(current, before))


@bench.command(name="workers")
@items_option
@count_option
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=2))
@rules_option
@baseline_option
@seed_option
@json_option
def bench_workers(path: str | None, count: int, workers: int, rule_count: int,
                  baseline: Path | None, seed: int, as_json: bool) -> None:  # fmt: skip
    """Process workers side by side on one Redis, beside one alone: wall throughput, CPU per
    item, and how often a batch was written again because another worker wrote what it read."""
    from monitor.bench.workers import measure as measure_workers
    from monitor.bench.workers import report as workers_report

    result = measure_workers(workers, path, count, rule_count, seed, baseline=baseline)
    click.echo(json.dumps(result) if as_json else workers_report(result))


@bench.command(name="reload")
@click.option("--rules", "rule_count", default=10000, show_default=True, help="Generated rules.")
@seed_option
@json_option
def bench_reload(rule_count: int, seed: int, as_json: bool) -> None:
    """A rule reload: its wall time, and how late the event loop runs meanwhile (what /healthz
    waits), compiling in a thread as the daemon does beside compiling on the loop."""
    from monitor.bench.reload import measure as measure_reload
    from monitor.bench.reload import report as reload_report

    result = measure_reload(rule_count, seed)
    click.echo(json.dumps(result) if as_json else reload_report(result))
