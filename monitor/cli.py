"""The ``monitor`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from monitor import __version__
from monitor.app.config_files import load_config
from monitor.app.daemon import ROLES, App
from monitor.app.settings import Settings
from monitor.app.wiring import configured_settings
from monitor.bench.commands import bench
from monitor.channels.console import ConsoleChannel
from monitor.commands.alerts import dead_letters, retry_dead_letters
from monitor.commands.desk import feedback, mute, snooze
from monitor.commands.evaluate import evaluate_stories
from monitor.commands.evaluate import report as evaluation_report
from monitor.commands.replay import replay
from monitor.commands.rules import backfill_rule, rule_test_lines
from monitor.commands.sources import check_sources
from monitor.commands.stories import (
    explain_story,
    explanation_lines,
    merge_stories,
    recent_stories,
    split_item,
    story_lines,
)
from monitor.core.rules import WatchConfig
from monitor.errors import ConfigError, StoreError
from monitor.ops.logs import configure
from monitor.ops.progress import is_terminal, progress_for
from monitor.ops.redaction import redact, register

F = TypeVar("F", bound=Callable[..., Any])


def _settings() -> Settings:
    try:
        return configured_settings()
    except ValueError as exc:
        raise click.ClickException(f"invalid MONITOR_* setting: {exc}") from None


def _config(rules_dir: Path, *, sends: bool = True) -> WatchConfig:
    """Load the rules or exit 1 listing every problem as ``path:line:col: message``.
    ``sends=False``: a command that sends nothing runs without the channels' secrets."""
    try:
        config = load_config(rules_dir, sends=sends)
        register(config.secrets)
        if not sends:
            for warning in config.warnings:
                if warning.message.endswith("(nothing is sent here)"):
                    click.echo(str(warning), err=True)
        return config
    except ConfigError as exc:
        _exit_on(exc, f" in {rules_dir}")


def _exit_on(exc: ConfigError, where: str = "") -> NoReturn:
    """Print every problem as ``path:line:col: message`` (masked), a count, and exit 1."""
    for problem in exc.problems:
        click.echo(redact(str(problem)), err=True)
    count = len(exc.problems)
    click.echo(f"{count} problem{'s' if count != 1 else ''}{where}", err=True)
    sys.exit(1)


def _fails_cleanly(func: F) -> F:
    """Errors a user can act on end the command with a message, not a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _exit_on(exc)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def echo_redacted(text: str) -> None:
    """Print what may hold a URL or an error from a source: environment values masked."""
    click.echo(redact(text))


def _logging(settings: Settings, level: str | None = None) -> None:
    """Log to stderr at ``level`` (default: the setting) in the format ``--log-format`` or
    ``MONITOR_LOG_FORMAT`` asks for."""
    root = click.get_current_context().find_root()
    chosen = (root.obj or {}).get("log_format") or settings.log_format
    configure(
        level or settings.log_level,
        "json" if chosen == "json" else "text",
        quiet={"apscheduler": logging.WARNING},
    )


rules_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Rules directory (default: MONITOR_RULES_DIR, else rules/).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsmonitor")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines on stderr as key=value text or JSON objects  [default: MONITOR_LOG_FORMAT, "
    "else text]",
)
@click.pass_context
def main(ctx: click.Context, log_format: str | None) -> None:
    """newsmonitor: alerts once per story from news feeds and wire services.

    \b
    Exit codes:
      0  done (run: stopped cleanly; rules check: no problem)
      1  a problem a user can act on: invalid rules, Redis unreachable, an unknown id,
         a source that failed (sources check)
      2  a command line that cannot be understood (unknown option, missing argument)
    """
    ctx.obj = {"log_format": log_format}


@main.command()
@click.option(
    "--role",
    "roles",
    type=click.Choice(ROLES),
    multiple=True,
    help="Run only this role (repeatable); default: all three.",
)
@click.option("--once", is_flag=True, help="Poll every source once, process, deliver, exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO whatever MONITOR_LOG_LEVEL says.")
@rules_option
@_fails_cleanly
def run(roles: tuple[str, ...], once: bool, verbose: bool, rules_dir: Path | None) -> None:
    """The daemon: poll sources, process items, deliver alerts, until SIGINT/SIGTERM."""
    settings = _settings()
    _logging(settings, "INFO" if verbose else None)
    directory = rules_dir or settings.rules_dir
    config = _config(directory)
    app = App(settings, config, roles or ROLES, rules_dir=None if once else directory)

    async def daemon() -> None:
        app.install_signal_handlers()
        await app.run(once=once)

    asyncio.run(daemon())


@main.command(name="replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@rules_option
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per alert.")
@click.option("--state", is_flag=True, help="Use the configured store instead of a fresh one.")
@click.option(
    "--clock",
    type=click.Choice(["arrival", "published"]),
    default="arrival",
    show_default=True,
    help="published: replay in order of publication with the clock following it (a backfill "
    "groups stories as the live run would have).",
)
@_fails_cleanly
def replay_command(
    paths: tuple[Path, ...], rules_dir: Path | None, json_lines: bool, state: bool, clock: str
) -> None:
    """Push files through the full pipeline and print the alerts."""
    settings = _settings()
    _logging(settings, "WARNING" if settings.log_level == "INFO" else settings.log_level)
    config = _config(rules_dir or settings.rules_dir, sends=False)
    sink = ConsoleChannel("stdout", json_lines=json_lines)
    progress = progress_for(prefix="replay: ")
    asyncio.run(replay(settings, config, paths, sink, state=state, clock=clock, progress=progress))


@main.group(name="eval")
def eval_group() -> None:
    """Measure newsmonitor on labelled data."""


@eval_group.command(name="stories")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--chunk-days",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Group the articles this many days at a time (0: all at once).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option(
    "--semantic/--no-semantic",
    default=None,
    help="Also place with sentence embeddings [default: when the semantic extra is installed].",
)
@_fails_cleanly
def eval_stories(
    paths: tuple[Path, ...], chunk_days: int, as_json: bool, semantic: bool | None
) -> None:
    """Story grouping on labelled JSON lines ({id, title, text, date, source, url, cluster}):
    pairwise and B-cubed scores beside an online TF-IDF baseline, and placement speed."""
    settings = _settings()
    _logging(settings, "WARNING" if settings.log_level == "INFO" else settings.log_level)
    found = asyncio.run(
        evaluate_stories(
            settings,
            paths,
            chunk_days=chunk_days,
            batch=settings.batch_size,
            semantic=semantic,
            progress=progress_for(prefix="eval: "),
        )
    )
    for evaluation in found:
        if as_json:
            click.echo(json.dumps(evaluation.as_dict()))
        else:
            click.echo("\n".join(evaluation_report(evaluation)))


@main.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, help="How many stories, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per story (or member).")
@click.option("--explain", "explain_id", metavar="ID", help="Why each member of story ID joined.")
@click.pass_context
@_fails_cleanly
def stories(ctx: click.Context, limit: int, as_json: bool, explain_id: str | None) -> None:
    """Recent stories: items, sources, first and last seen; correct them with split and merge."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    if explain_id is not None:
        for joined in asyncio.run(explain_story(settings, explain_id)):
            if as_json:
                click.echo(json.dumps(joined, ensure_ascii=False))
            else:
                click.echo("\n".join(explanation_lines(joined)))
        return
    found = asyncio.run(recent_stories(settings, limit))
    if as_json:
        for story in found:
            click.echo(json.dumps(story, ensure_ascii=False))
        return
    if not found:
        click.echo("no stories yet")
    for story in found:
        click.echo("\n".join(story_lines(story)))


@stories.command(name="split")
@click.argument("item")
@_fails_cleanly
def stories_split(item: str) -> None:
    """Take ITEM out of its story into a story of its own; later items that match it best
    follow it."""
    old, new = asyncio.run(split_item(_settings(), item))
    click.echo(f"{item} left story {old}; it is now story {new}")


@stories.command(name="merge")
@click.argument("into")
@click.argument("other")
@_fails_cleanly
def stories_merge(into: str, other: str) -> None:
    """Move every item of story OTHER into story INTO; later items follow."""
    moved = asyncio.run(merge_stories(_settings(), into, other))
    click.echo(f"moved {moved} items of story {other} into story {into}")


@main.command()
@rules_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@_fails_cleanly
def status(rules_dir: Path | None, as_json: bool) -> None:
    """Sources and their health, rules loaded, alerts in the last hour and day by rule, queues.

    Tables on a terminal, plain lines otherwise. Exit 1 when Redis cannot be reached or the
    rules are invalid.
    """
    from monitor.commands.status import gather_status
    from monitor.ops.status import plain_lines, tables

    settings = _settings()
    _logging(settings, "WARNING" if settings.log_level == "INFO" else settings.log_level)
    found = asyncio.run(gather_status(settings, rules_dir or settings.rules_dir, time.time()))
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False))
    elif is_terminal(sys.stdout):
        from rich.console import Console

        Console(file=sys.stdout).print(tables(found))
    else:
        for line in plain_lines(found):
            click.echo(line)
    if found["rules"]["problems"]:
        sys.exit(1)


@main.group()
def alerts() -> None:
    """Alerts that could not be delivered (dead letters)."""


@alerts.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
@_fails_cleanly
def dead(as_json: bool) -> None:
    """List dead letters: channel, rule, title, why, when."""
    letters = asyncio.run(dead_letters(_settings()))
    for letter in letters:
        if as_json:
            click.echo(json.dumps(letter, ensure_ascii=False))
        else:
            when = letter["failed_at"] or "?"
            click.echo(
                f"{letter['id']}  {when[:16].replace('T', ' ')} UTC  {letter['channel']}  "
                f"{letter['rule']}: {letter['title']}\n    {letter['reason']}"
            )
    if not letters and not as_json:
        click.echo("no dead letters")


@alerts.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Send every dead letter again.")
@_fails_cleanly
def retry(ids: tuple[str, ...], every: bool) -> None:
    """Send dead letters again: the given ids, or all of them with --all."""
    if bool(ids) == every:
        raise click.UsageError("give dead-letter ids, or --all")
    try:
        count = asyncio.run(retry_dead_letters(_settings(), None if every else list(ids)))
    except LookupError as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    click.echo(f"{count} dead letter{'s' if count != 1 else ''} back in the outbox")


@main.group()
def sources() -> None:
    """The configured sources: their health, or a fetch of each now."""


@sources.command(name="check")
@rules_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source.")
@_fails_cleanly
def sources_check(rules_dir: Path | None, as_json: bool) -> None:
    """Fetch each source once now: status, entries parsed, bytes, time, error. Exit 1 if any
    source failed."""
    settings = _settings()
    _logging(settings)
    config = _config(rules_dir or settings.rules_dir)
    found = asyncio.run(check_sources(settings, config))
    for row in found:
        if as_json:
            click.echo(redact(json.dumps(row)))
            continue
        outcome = f"ERROR {row['error']}" if row["error"] else f"{row['entries']} entries"
        echo_redacted(
            f"{row['id']}: {row['url']}  status {row['status'] or '-'}  {outcome}  "
            f"{row['bytes']} bytes  {row['seconds']:.2f} s"
            + (f"  (malformed but readable: {row['bozo']})" if row["bozo"] else "")
        )
    if any(row["error"] for row in found):
        sys.exit(1)


@sources.command(name="list")
@rules_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source.")
@_fails_cleanly
def sources_list(rules_dir: Path | None, as_json: bool) -> None:
    """Health the poll role keeps in Redis: last success, last error, failures, rate, next due."""
    from monitor.commands.sources import source_health

    settings = _settings()
    _logging(settings)
    config = _config(rules_dir or settings.rules_dir, sends=False)
    found = asyncio.run(source_health(settings, config))
    if as_json:
        for row in found:
            click.echo(redact(json.dumps(row)))
        return
    for row in found:
        state = (
            "never polled"
            if row["last_poll"] is None
            else (
                f"FAILING x{row['consecutive_failures']}: {row['error']}"
                if row["consecutive_failures"]
                else f"ok at {row['last_success']}"
            )
        )
        echo_redacted(
            f"{row['id']} ({row['type']}, {row['where']}): {state}; "
            f"last new item {row['last_new_item'] or '-'}; {row['items_per_day']} items/day; "
            f"next due {row['next_due'] or 'now'}"
        )


@sources.command(name="add")
@click.argument("url")
@click.option("--id", "wanted_id", help="The source's id (default: from the feed's host).")
@click.option("--file", type=click.Path(path_type=Path), help="The rule file to append it to.")
@rules_option
@_fails_cleanly
def sources_add(url: str, wanted_id: str | None, file: Path | None, rules_dir: Path | None) -> None:
    """Find the feed of URL (a feed, or a page that announces one), check it with one fetch,
    and append it to the sources, comments and order of the file kept."""
    from monitor.commands.onboarding import add_feed
    from monitor.errors import SourceError

    settings = _settings()
    directory = rules_dir or settings.rules_dir
    config = _config(directory, sends=False)
    try:
        added = asyncio.run(
            add_feed(settings, config, directory, url, wanted_id=wanted_id, file=file)
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except SourceError as exc:
        echo_redacted(f"no feed added: {exc}")
        sys.exit(1)
    assert added.found is not None
    echo_redacted(
        f"added {added.ids[0]} to {added.file}: {added.found.url} "
        f"({added.found.title}, {added.found.entries} entries)"
    )


@sources.command(name="import")
@click.argument("opml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file", type=click.Path(path_type=Path), help="The rule file to append to.")
@rules_option
@_fails_cleanly
def sources_import(opml: Path, file: Path | None, rules_dir: Path | None) -> None:
    """Add every feed of an OPML file (from a feed reader) not subscribed yet."""
    from monitor.commands.onboarding import import_opml

    settings = _settings()
    directory = rules_dir or settings.rules_dir
    config = _config(directory, sends=False)
    try:
        added = import_opml(config, directory, opml.read_bytes(), file)
    except ValueError as exc:
        raise click.UsageError(f"{opml}: {exc}") from None
    click.echo(
        f"added {len(added.ids)} feeds to {added.file}"
        + (f" ({added.skipped} already subscribed)" if added.skipped else "")
    )


@sources.command(name="export")
@rules_option
@_fails_cleanly
def sources_export(rules_dir: Path | None) -> None:
    """The feed sources as OPML 2.0, on stdout."""
    from monitor.commands.onboarding import export_opml

    settings = _settings()
    click.echo(export_opml(_config(rules_dir or settings.rules_dir, sends=False)), nl=False)


@main.group()
def rules() -> None:
    """Validate and try out the watch rules."""


@rules.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@rules_option
def check(directory: Path | None, rules_dir: Path | None) -> None:
    """Validate the rules (DIRECTORY or --rules); exit 1 with path:line:col: message for each
    problem, warnings on stderr with exit 0."""
    if directory is not None and rules_dir is not None and directory != rules_dir:
        raise click.UsageError("give the rules directory once: DIRECTORY or --rules")
    directory = directory or rules_dir or _settings().rules_dir
    config = _config(directory)
    for warning in config.warnings:
        click.echo(redact(str(warning)), err=True)
    click.echo(
        f"{directory}: OK: {len(config.sources)} sources, {len(config.entities)} entities, "
        f"{len(config.rules)} rules, {len(config.channels)} channels"
    )


@rules.command(name="test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True, path_type=Path))
@rules_option
@click.option("--since", help="Try the items that came in this long ago until now (24h, 90m).")
@click.option("--rule", "only", multiple=True, help="Only this rule (repeatable).")
@click.option("--matches-only", is_flag=True, help="Leave out what matched nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per item (and rule).")
@_fails_cleanly
def rules_test(paths: tuple[Path, ...], rules_dir: Path | None, **options: Any) -> None:
    """Which rules match each file, the item on stdin (-), or the items that came in --since
    (from the history); the rules files as they are now. Nothing is sent or remembered."""
    settings = _settings()
    config = _config(rules_dir or settings.rules_dir, sends=False)
    if not paths and options["since"] is None:
        raise click.UsageError("give files, - for an item on stdin, or --since DURATION")
    stdin = sys.stdin.read() if Path("-") in paths else ""
    try:
        for line, to_stderr in rule_test_lines(settings, config, paths, stdin, **options):
            click.echo(line, err=to_stderr)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@rules.command(name="backfill")
@click.argument("rule_id", metavar="ID")
@click.option("--since", required=True, help="How far back: 6h, 90m, 2d (within the history).")
@rules_option
@_fails_cleanly
def rules_backfill(rule_id: str, since: str, rules_dir: Path | None) -> None:
    """Alert on what rule ID would have matched since then: each story once, never one the rule
    already alerted on (the process role's claims); no follow-ups for the past."""
    settings = _settings()
    config = _config(rules_dir or settings.rules_dir, sends=False)
    try:
        done, found = asyncio.run(backfill_rule(settings, config, rule_id, since))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(found.reach(settings.history), err=True)
    for alert in done.alerts:
        echo_redacted(
            f"  alert: {alert.item.title} [{alert.item.source}] → {', '.join(alert.channels)}"
        )
    click.echo(
        f"{rule_id}: {len(done.alerts)} alerts to the outbox; {done.matched} matching items in "
        f"{done.stories} stories, {done.already_alerted} of them alerted before; "
        f"{done.duplicates} duplicates left out"
    )


@main.group()
def channels() -> None:
    """Check where alerts go."""


@channels.command(name="test")
@click.argument("channel_id", metavar="ID")
@rules_option
@_fails_cleanly
def channels_test(channel_id: str, rules_dir: Path | None) -> None:
    """Send one test alert through channel ID now; exit 1 with the channel's error."""
    from monitor.commands.channels import send_test_alert
    from monitor.errors import DeliveryError

    settings = _settings()
    config = _config(rules_dir or settings.rules_dir)
    try:
        alert = asyncio.run(send_test_alert(settings, config, channel_id))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except DeliveryError as exc:
        echo_redacted(f"{channel_id}: FAILED: {exc}")
        sys.exit(1)
    click.echo(f"{channel_id}: delivered the test alert {alert.id}")


main.add_command(bench)
for command in (mute, snooze, feedback):
    main.add_command(command)

if __name__ == "__main__":
    main()
