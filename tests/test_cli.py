"""The commands as a user runs them, on the real seeds/ and rules/ of the project."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.factories import make_alert, make_item, outbox_entries

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
RULES = ROOT / "rules"
ACCEPTANCE = ROOT / "tests" / "data" / "rules" / "acceptance"
BROKEN = ROOT / "tests" / "data" / "rules" / "broken"
BROKEN_MESSAGE = f"{BROKEN / 'rules.yaml'}:5:25: missing ')' to close this '('"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Settings pointing at a private data directory; never at the developer's own state."""
    return {
        "MONITOR_DATA_DIR": str(tmp_path / "data"),
        "MONITOR_RULES_DIR": str(RULES),
        "MONITOR_REDIS_URL": "",
    }


def invoke(args: list[str], env: dict[str, str]) -> Any:
    runner = CliRunner()
    clean = {k: v for k, v in env.items() if v}
    unset = [k for k, v in env.items() if not v]
    result = runner.invoke(
        main, args, env={**clean, **dict.fromkeys(unset)}, catch_exceptions=False
    )
    return result


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def seed_number(record: dict[str, Any]) -> str:
    return Path(record["item"]["path"]).name[:3]


def test_replay_alerts_once_per_story_with_follow_ups(env: dict[str, str]) -> None:
    """Seeds: 001 duplicates 000, all five are one story; the rule alerts on 000 and follows
    up on 002 and 004 (003 does not match it)."""
    first = invoke(["replay", str(SEEDS), "--json"], env)
    assert first.exit_code == 0, first.output
    alerts = json_lines(first.stdout)
    release = [(seed_number(a), a["followup"]) for a in alerts if a["rule"] == "maduro-release"]
    assert release == [("000", False), ("002", True), ("004", True)]
    assert len({a["story"] for a in alerts}) == 1
    assert len({a["id"] for a in alerts if a["rule"] == "maduro-release"}) == 1
    assert "001" not in {seed_number(a) for a in alerts}
    for alert in alerts:
        assert alert["item"]["id"] and alert["item"]["title"] and alert["item"]["source"] == "seeds"
        text = alert["item"]["text"]
        for match in alert["matches"]:
            assert set(match) >= {"field", "term", "start", "end"}
            field_text = text if match["field"] == "text" else alert["item"][match["field"]]
            assert field_text[match["start"] : match["end"]].strip()

    second = invoke(["replay", str(SEEDS), "--json"], env)
    assert second.exit_code == 0
    key = [(a["rule"], a["item"]["id"], a["story"]) for a in json_lines(second.stdout)]
    assert key == [(a["rule"], a["item"]["id"], a["story"]) for a in alerts]


def test_replay_human_lines(env: dict[str, str]) -> None:
    result = invoke(["replay", str(SEEDS / "001_15baf2397582328a.txt")], env)
    assert result.exit_code == 0
    line = next(x for x in result.stdout.splitlines() if "Calls to release Maduro" in x)
    assert line.startswith("[high] Calls to release Maduro: Russia Demands Release of Maduro")
    assert "https://www.themoscowtimes.com/2026/01/03/" in line


def test_replay_with_state_remembers_what_it_saw(env: dict[str, str]) -> None:
    first = invoke(["replay", str(SEEDS), "--json", "--state"], env)
    assert first.exit_code == 0 and json_lines(first.stdout)
    second = invoke(["replay", str(SEEDS), "--json", "--state"], env)
    assert second.exit_code == 0
    assert json_lines(second.stdout) == []


def test_rules_test_acceptance_on_seeds(env: dict[str, str]) -> None:
    result = invoke(["rules", "test", "--rules", str(ACCEPTANCE), str(SEEDS), "--json"], env)
    assert result.exit_code == 0, result.output
    by_seed = {Path(r["path"]).name[:3]: r for r in json_lines(result.stdout)}
    assert sorted(by_seed) == ["000", "001", "002", "003", "004"]

    def matching(rule: str) -> list[str]:
        return sorted(seed for seed, r in by_seed.items() if rule in r["rules"])

    assert matching("rodriguez") == ["000", "001", "002", "003", "004"]
    assert "000" not in matching("sergey-lavrov")
    assert "000" in matching("lavrov")
    assert matching("security-council") == ["002", "003"]
    assert "003" in matching("un") and "002" not in matching("un")
    assert "000" in matching("us-custody")
    assert matching("maduro-release") == ["000", "001", "002", "004"]
    for record in by_seed.values():
        assert record["rules"] == sorted(record["rules"])
        for found in record["matches"].values():
            for match in found:
                assert match["text"]  # the original characters that matched
    accented = by_seed["001"]["matches"]["rodriguez"][0]["text"]
    assert accented == "Rodríguez"


@pytest.mark.parametrize("how", [[str(BROKEN)], ["--rules", str(BROKEN)]])
def test_rules_check_reports_file_line_col_and_exits_1(env: dict[str, str], how: list[str]) -> None:
    result = invoke(["rules", "check", *how], env)
    assert result.exit_code == 1
    assert BROKEN_MESSAGE in result.stderr
    assert "Traceback" not in result.output


def test_rules_check_takes_the_directory_once(env: dict[str, str]) -> None:
    result = invoke(["rules", "check", str(RULES), "--rules", str(BROKEN)], env)
    assert result.exit_code == 2 and "give the rules directory once" in result.output


def test_rules_check_ok(env: dict[str, str]) -> None:
    result = invoke(["rules", "check", str(RULES)], env)
    assert result.exit_code == 0
    assert "OK" in result.stdout


@pytest.mark.parametrize("command", [["replay", str(SEEDS)], ["run", "--once"]])
def test_replay_and_run_refuse_to_start_on_a_broken_rule(
    command: list[str], env: dict[str, str]
) -> None:
    result = invoke([*command, "--rules", str(BROKEN)], env)
    assert result.exit_code == 1
    assert BROKEN_MESSAGE in result.stderr
    assert result.stdout == ""


def test_run_once_alerts_then_remembers(env: dict[str, str]) -> None:
    first = invoke(["run", "--once"], env)
    assert first.exit_code == 0, first.output
    lines = [x for x in first.stdout.splitlines() if x.startswith("[")]
    assert any(x.startswith("[high] Calls to release Maduro") for x in lines)
    stories = invoke(["stories", "--json"], env)
    assert stories.exit_code == 0
    [story] = json_lines(stories.stdout)
    assert (story["items"], story["duplicates"], story["sources"]) == (5, 1, ["seeds"])
    members = {Path(m["title"]).name: m for m in story["members"]}
    assert len(members) == 5
    assert sum(1 for m in story["members"] if m["duplicate_of"]) == 1
    health = invoke(["sources", "list", "--json"], env)
    [seeds] = json_lines(health.stdout)
    assert seeds["id"] == "seeds" and seeds["last_success"] and seeds["last_new_item"]
    assert seeds["consecutive_failures"] == 0 and seeds["error"] is None
    second = invoke(["run", "--once"], env)
    assert second.exit_code == 0
    assert [x for x in second.stdout.splitlines() if x.startswith("[")] == []


def test_daemon_drains_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """The real process: it prints the seeds' alerts, then SIGTERM stops it cleanly."""
    env = {
        **os.environ,
        "MONITOR_DATA_DIR": str(tmp_path / "data"),
        "MONITOR_RULES_DIR": str(RULES),
    }
    env.pop("MONITOR_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline and len(seen) < 3:
            line = proc.stdout.readline()
            if "Calls to release Maduro" in line:
                seen.append(line)
        assert [x.startswith("[high]") for x in seen] == [True, False, False]  # then follow-ups
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_bench_json_reports_each_stage_and_the_baseline(env: dict[str, str]) -> None:
    result = invoke(
        ["bench", "match", "--rules", "30", "--items", "6", "--repeat", "1", "--json"], env
    )
    assert result.exit_code == 0, result.output
    [report] = json_lines(result.stdout)
    assert report["rules"] == 30 and report["items"] == 6
    for stage in ("normalize_items_per_s", "match_items_per_s", "baseline_match_items_per_s"):
        assert report[stage] > 0
    assert report["baseline_agrees"] is True
    assert report["matches_per_item"] > 0


async def test_alerts_dead_lists_and_retry_requeues(tmp_path: Path) -> None:
    """Dead letters written by the dispatch role, listed and sent again from the command line."""
    import asyncio

    from monitor.store import Store
    from monitor.store.server import RedisServer

    env = {"MONITOR_DATA_DIR": str(tmp_path / "data"), "MONITOR_RULES_DIR": str(RULES)}
    item = make_item("x:1", source="x", title="A headline", text="t")
    alert = make_alert(item=item, rule_name="R", severity="low", story="s", channels=("hook",))
    async with RedisServer.embedded(tmp_path / "data") as client:
        store = Store(client)
        await store.dead.add_many(
            [{"channel": "hook", "alert": alert.to_dict(), "reason": "HTTP 410", "failed_at": 0}]
        )
        listed = await asyncio.to_thread(invoke, ["alerts", "dead", "--json"], env)
        [letter] = json_lines(listed.stdout)
        assert (letter["channel"], letter["reason"], letter["title"]) == (
            "hook",
            "HTTP 410",
            "A headline",
        )
        assert letter["failed_at"] == "1970-01-01T00:00:00+00:00"  # JSON times: ISO, offset
        usage = await asyncio.to_thread(invoke, ["alerts", "retry"], env)
        assert usage.exit_code == 2
        unknown = await asyncio.to_thread(invoke, ["alerts", "retry", letter["id"], "0-1"], env)
        assert unknown.exit_code == 1 and "no dead letter 0-1" in unknown.output
        assert await store.dead.length() == 1  # nothing was retried
        retried = await asyncio.to_thread(invoke, ["alerts", "retry", letter["id"]], env)
        assert retried.exit_code == 0 and "1 dead letter back" in retried.stdout
        assert await store.dead.length() == 0
        [(_, entry)] = await client.xrange(store.keys.outbox_stream)
        assert "reason" not in entry["data"] and '"hook"' in entry["data"]


async def test_replay_with_state_leaves_the_daemons_queues_alone(tmp_path: Path) -> None:
    import asyncio

    from monitor.models import Item
    from monitor.store import Store
    from monitor.store.server import RedisServer
    from monitor.store.streams import item_entry

    env = {"MONITOR_DATA_DIR": str(tmp_path / "data"), "MONITOR_RULES_DIR": str(RULES)}
    waiting = Item(id="daemon:1", source="wire", title="Waiting item", text="Maduro released.")
    alert = make_alert(
        item=waiting, rule_name="R", severity="low", story="s", channels=("newsroom",)
    )
    async with RedisServer.embedded(tmp_path / "data") as client:
        store = Store(client)
        await store.items.add_many([item_entry(waiting)])
        await store.outbox.add_many(outbox_entries("newsroom", [alert]))
        result = await asyncio.to_thread(invoke, ["replay", str(SEEDS), "--json", "--state"], env)
        assert result.exit_code == 0 and json_lines(result.stdout)
        assert all(a["item"]["id"] != "daemon:1" for a in json_lines(result.stdout))
        assert await store.items.length() == 1 and await store.outbox.length() == 1
        assert await store.dead.length() == 0
        leftovers = [k async for k in client.scan_iter(match="monitor:replay-*")]
        assert leftovers == []  # the private streams are gone


def test_replay_prints_no_progress_bar_when_not_a_terminal(env: dict[str, str]) -> None:
    """stdout holds the alerts and nothing else; stderr a plain line per stage, no bar."""
    result = invoke(["replay", str(SEEDS), "--json"], env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and all(json.loads(line)["rule"] for line in lines)
    assert result.stderr.splitlines() == ["replay: reading: 1/1", "replay: processing: 5/5"]
    assert "\x1b" not in result.output and "━" not in result.output


def test_bench_prints_no_progress_bar_when_not_a_terminal(env: dict[str, str]) -> None:
    result = invoke(
        ["bench", "match", "--rules", "30,40", "--items", "4", "--repeat", "2", "--json"], env
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["rules"] for line in result.stdout.splitlines()] == [30, 40]
    # per rule count: workload, automaton, 4 stages x 2 runs, the baseline once
    assert result.stderr.splitlines() == ["bench: 30 rules: 11/11", "bench: 40 rules: 11/11"]


def test_replay_draws_a_bar_on_a_terminal_and_keeps_stdout_as_it_is(tmp_path: Path) -> None:
    """A real terminal on stderr (a pty): the bar is drawn there; stdout, a pipe, holds the
    same alerts as without a terminal."""
    pty = pytest.importorskip("pty", reason="pseudo-terminals need a POSIX system")
    env = {
        **os.environ,
        "MONITOR_DATA_DIR": str(tmp_path / "data"),
        "MONITOR_RULES_DIR": str(RULES),
        "TERM": "xterm",
    }
    env.pop("MONITOR_REDIS_URL", None)
    command = [sys.executable, "-m", "monitor", "replay", str(SEEDS), "--json"]
    plain = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert plain.returncode == 0
    assert b"\x1b" not in plain.stderr

    leader, follower = pty.openpty()
    drawn, stdout = b"", b""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    try:
        assert proc.stdout is not None
        out = proc.stdout.fileno()
        open_fds = {leader, out}
        deadline = time.monotonic() + 120
        # Read both as they come (either may fill up and block the child) until stdout ends.
        while out in open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 1.0)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the terminal's other end is closed
                    chunk = b""
                if not chunk:
                    open_fds.discard(fd)
                elif fd == out:
                    stdout += chunk
                else:
                    drawn += chunk
        proc.stdout.close()
        assert proc.wait(timeout=120) == 0
        while leader in open_fds and select.select([leader], [], [], 1.0)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert b"\x1b[" in drawn and b"replay: processing" in drawn and b"5/5" in drawn

    def comparable(output: bytes) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in json.loads(line).items() if k != "created"}
            for line in output.decode().splitlines()
        ]

    assert comparable(stdout) == comparable(plain.stdout) != []


def labelled(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def row(n: int, cluster: str, title: str, text: str, day: int = 2) -> dict[str, str]:
    return {
        "id": f"r{n}",
        "title": title,
        "text": text,
        "date": f"2026-03-0{day}T{10 + n:02d}:00:00+00:00",
        "source": f"outlet{n}",
        "url": f"https://outlet{n}.example/{n}",
        "cluster": cluster,
    }


QUAKE_TEXT = "A magnitude 6.4 earthquake struck near Lima, Peru; buildings swayed in Callao."
BUDGET_TEXT = "The Senate passed the farm budget bill after a long debate over subsidies."


def test_eval_stories_scores_the_grouping_beside_the_baseline(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = labelled(
        tmp_path / "set.jsonl",
        [
            row(1, "quake", "Earthquake strikes near Lima", QUAKE_TEXT),
            row(2, "budget", "Senate passes farm budget", BUDGET_TEXT),
            row(3, "quake", "Lima earthquake shakes Callao", QUAKE_TEXT + " Officials said."),
        ],
    )
    result = invoke(["eval", "stories", str(path), "--json"], env)
    assert result.exit_code == 0, result.output
    [report] = json_lines(result.stdout)
    assert report["articles"] == 3 and report["chunks"] == 1
    assert report["stories"]["true_pairs"] == 1
    assert (report["stories"]["precision"], report["stories"]["recall"]) == (1.0, 1.0)
    assert report["baseline"]["f1"] == 1.0 and report["f1_over_baseline"] == 0.0
    assert report["placement_items_per_s"] > 0
    text = invoke(["eval", "stories", str(path), "--chunk-days", "1"], env)
    assert "newsmonitor stories" in text.stdout and "baseline TF-IDF" in text.stdout


def test_eval_stories_names_the_line_of_a_bad_row(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row(1, "a", "t", "x")) + "\n{not json\n", encoding="utf-8")
    result = invoke(["eval", "stories", str(path)], env)
    assert result.exit_code == 1
    assert f"{path}:2:" in result.output


def test_replay_with_the_published_clock_keeps_old_reports_apart(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Two reports of one story published nine days apart: outside the 7-day story window on
    the published clock, so the second alerts again; on the arrival clock both arrive now."""
    feed = tmp_path / "feed"
    feed.mkdir()
    first = {"id": "a", "title": "Earthquake strikes near Lima", "text": QUAKE_TEXT}
    second = {"id": "b", "title": "Lima earthquake shakes Callao", "text": QUAKE_TEXT + " Again."}
    (feed / "1.json").write_text(json.dumps({**second, "published": "2026-03-10T10:00:00+00:00"}))
    (feed / "2.json").write_text(json.dumps({**first, "published": "2026-03-01T10:00:00+00:00"}))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text("rules:\n  - {id: quake, query: earthquake}\n")
    env = {**env, "MONITOR_RULES_DIR": str(rules)}
    arrival = json_lines(invoke(["replay", str(feed), "--json"], env).stdout)
    assert [a["followup"] for a in arrival] == [False, True]
    published = json_lines(
        invoke(["replay", str(feed), "--json", "--clock", "published"], env).stdout
    )
    assert [(a["item"]["title"], a["followup"]) for a in published] == [
        (first["title"], False),
        (second["title"], False),
    ]


def test_rules_test_since_tries_the_rules_on_what_came_in(env: dict[str, str]) -> None:
    assert invoke(["rules", "test", "--since", "1h"], env).stderr.startswith("history: empty")
    assert invoke(["replay", str(SEEDS), "--state"], env).exit_code == 0
    result = invoke(["rules", "test", "--since", "1h", "--rule", "maduro-release", "--json"], env)
    assert result.exit_code == 0, result.output
    *rows, summary = json_lines(result.stdout)
    # Five seeds came in, one a duplicate (left out: it would never alert); three match.
    assert summary["summary"] == {
        "tried": 4,
        "matched": 3,
        "duplicates_skipped": 1,
        "rules": {"maduro-release": 3},
    }
    assert {row["rule"] for row in rows} == {"maduro-release"} and len(rows) == 3
    for row in rows:
        assert {m["text"].lower()[:7] for m in row["matches"]["maduro-release"]} >= {"release"}
    assert result.stderr.startswith("history: 5 items since ")
    human = invoke(["rules", "test", "--since", "1h", "--matches-only"], env).stdout
    assert "maduro-release: 3 items" in human and "4 items tried (1 duplicates left out)" in human
    stale = invoke(["rules", "test", "--since", "0s", "--rule", "maduro-release"], env)
    assert "maduro-release: 0 items" in stale.stdout
    assert invoke(["rules", "test", "--since", "soon"], env).exit_code == 2
    assert invoke(["rules", "test", "--since", "1h", "--rule", "nope"], env).exit_code == 2


def test_rules_backfill_alerts_each_missed_story_once(env: dict[str, str], tmp_path: Path) -> None:
    import asyncio
    import shutil

    from monitor.store import Store
    from monitor.store.server import RedisServer

    assert invoke(["replay", str(SEEDS), "--state"], env).exit_code == 0
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "late.yaml").write_text("rules:\n  - {id: late-lavrov, query: 'Lavrov AND phone'}\n")
    later = {**env, "MONITOR_RULES_DIR": str(rules)}

    async def outbox() -> list[tuple[str, str]]:
        async with RedisServer.embedded(Path(env["MONITOR_DATA_DIR"])) as client:
            entries = await client.xrange(Store(client).keys.outbox_stream)
        return [
            (json.loads(data["data"])["alert"]["rule"], json.loads(data["data"])["channel"])
            for _, data in entries
        ]

    before = asyncio.run(outbox())
    done = invoke(["rules", "backfill", "late-lavrov", "--since", "1h"], later)
    assert done.exit_code == 0, done.output
    *shown, summary = done.stdout.strip().splitlines()
    # Two items match, of one story: one alert.
    assert summary.startswith("late-lavrov: 1 alerts to the outbox; 2 matching items in 1 stories")
    assert len(shown) == 1 and shown[0].startswith("alert: ")
    assert done.stderr.startswith("history: 5 items since ")
    assert asyncio.run(outbox())[len(before) :] == [("late-lavrov", "desk-console")]
    again = invoke(["rules", "backfill", "late-lavrov", "--since", "1h"], later)
    assert "late-lavrov: 0 alerts to the outbox" in again.stdout  # its story is claimed now
    assert "1 stories, 1 of them alerted before" in again.stdout
    known = invoke(["rules", "backfill", "maduro-release", "--since", "1h"], later)
    assert "maduro-release: 0 alerts" in known.stdout  # the live run alerted on it already
    assert invoke(["rules", "backfill", "nope", "--since", "1h"], later).exit_code == 2


def test_commands_that_send_nothing_run_without_channel_secrets(
    env: dict[str, str], tmp_path: Path
) -> None:
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    with (rules / "channels.yaml").open("a") as channels:
        channels.write(
            '  - {id: slack, type: slack, token: "${NM_TEST_UNSET_TOKEN}", channel: C1}\n'
        )
    lacking = {**env, "MONITOR_RULES_DIR": str(rules), "NM_TEST_UNSET_TOKEN": ""}
    status = invoke(["status"], lacking)
    assert status.exit_code == 0 and "6 loaded" in status.stdout, status.output
    for command in (["sources", "list"], ["rules", "test", str(SEEDS)]):
        result = invoke(command, lacking)
        assert result.exit_code == 0, (command, result.output)
        assert "NM_TEST_UNSET_TOKEN is not set (nothing is sent here)" in result.stderr
    checked = invoke(["rules", "check"], lacking)  # what `run` would load: the secret is needed
    assert checked.exit_code == 1
    assert "environment variable NM_TEST_UNSET_TOKEN is not set" in checked.stderr


def test_rules_test_reads_an_item_from_stdin(env: dict[str, str]) -> None:
    runner = CliRunner()
    text = "Maduro to be released\nThe court ordered it on Monday."
    result = runner.invoke(main, ["rules", "test", "-", "--matches-only"], input=text, env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("-: Maduro to be released\n  ✔ maduro-release: ")
    as_json = '{"title": "Weather", "text": "Sunny all week."}'
    quiet = runner.invoke(main, ["rules", "test", "-", "--matches-only"], input=as_json, env=env)
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_stories_explain_split_and_merge_from_the_command_line(env: dict[str, str]) -> None:
    assert invoke(["replay", str(SEEDS), "--state"], env).exit_code == 0
    [story] = json_lines(invoke(["stories", "--json"], env).stdout)
    for moment in (story["first_seen"], story["last_seen"]):  # JSON times: ISO, with offset
        assert datetime.fromisoformat(moment).utcoffset() is not None
    explained = invoke(["stories", "--explain", story["id"], "--json"], env)
    members = json_lines(explained.stdout)
    assert [m["how"] for m in members].count("first report") == 1
    assert {"matched", "duplicate"} <= {m["how"] for m in members}
    human = invoke(["stories", "--explain", story["id"]], env).stdout
    assert "shared terms:" in human and "joined: matched" in human
    target = next(m for m in members if m["how"] == "matched")["id"]
    split = invoke(["stories", "split", target], env)
    assert split.exit_code == 0 and "it is now story" in split.stdout
    after = {s["id"]: s for s in json_lines(invoke(["stories", "--json"], env).stdout)}
    assert len(after) == 2
    alone = next(s for s in after.values() if s["id"] != story["id"])
    merged = invoke(["stories", "merge", story["id"], alone["id"]], env)
    assert merged.exit_code == 0 and "moved 1 items" in merged.stdout
    [back] = json_lines(invoke(["stories", "--json"], env).stdout)
    assert back["items"] == story["items"]
    missing = invoke(["stories", "split", "no-such-item"], env)
    assert missing.exit_code == 1 and "no item" in missing.output


def test_eval_stories_with_the_semantic_extra_or_a_clear_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    from monitor.app.semantic import available

    path = labelled(
        tmp_path / "set.jsonl",
        [
            row(1, "q", "Earthquake strikes near Lima", QUAKE_TEXT),
            row(2, "b", "Budget", BUDGET_TEXT),
        ],
    )
    result = invoke(["eval", "stories", str(path), "--semantic", "--json"], env)
    if available():
        [report] = json_lines(result.stdout)
        assert report["semantic"]["true_pairs"] == 0 and report["semantic_items_per_s"] > 0
    else:
        assert result.exit_code == 1
        assert "pip install 'newsmonitor[semantic]'" in result.output
    plain = json_lines(
        invoke(["eval", "stories", str(path), "--no-semantic", "--json"], env).stdout
    )
    assert plain[0]["semantic"] is None


@pytest.mark.parametrize(
    "command", [[], ["rules"], ["rules", "check"], ["stories", "split"], ["eval", "stories"]]
)
def test_dash_h_is_help_everywhere(env: dict[str, str], command: list[str]) -> None:
    short, long = invoke([*command, "-h"], env), invoke([*command, "--help"], env)
    assert short.exit_code == long.exit_code == 0
    assert short.output == long.output and "Usage:" in short.output


def test_the_exit_codes_are_in_the_help(env: dict[str, str]) -> None:
    output = invoke(["--help"], env).output
    assert "Exit codes:" in output
    assert all(f"  {code}  " in output for code in "012")


def test_rules_check_warns_and_still_exits_0(env: dict[str, str], tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(
        "rules:\n  - {id: a, query: 'maduro and release'}\n  - {id: b, query: '\"x y\"'}\n"
    )
    result = invoke(["rules", "check", str(rules)], env)
    assert result.exit_code == 0, result.output
    assert f"{rules / 'rules.yaml'}:2:28: warning: lowercase 'and' is searched as a word" in (
        result.stderr
    )
    assert "OK: 0 sources, 0 entities, 2 rules" in result.stdout


@pytest.mark.parametrize(("flags", "info"), [([], False), (["-v"], True)])
def test_run_logs_at_info_only_when_asked(
    env: dict[str, str], flags: list[str], info: bool
) -> None:
    """What `make run` does: MONITOR_LOG_LEVEL=WARNING keeps stderr quiet; -v says more."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--once", *flags],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "MONITOR_REDIS_URL"},
            **{k: v for k, v in env.items() if v},  # an empty value means unset
            "MONITOR_LOG_LEVEL": "WARNING",
            "MONITOR_HTTP_PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("[high] Calls to release Maduro") == 1  # the alerts, as always
    assert ("level=info" in done.stderr) is info


def test_mute_snooze_and_feedback_show_in_status(env: dict[str, str]) -> None:
    replayed = invoke(["replay", str(SEEDS), "--state", "--json"], env)
    [first, *_] = json_lines(replayed.stdout)
    story, alert = first["story"], first["id"]
    given = invoke(["feedback", alert, "not-relevant", "--note", "old news"], env)
    assert given.exit_code == 0 and given.stdout.startswith(f"feedback on {alert} (")
    assert invoke(["feedback", "nosuchalert", "relevant"], env).exit_code == 1
    muted = invoke(["mute", "story", alert, "--for", "2h"], env)  # an alert id names its story
    assert muted.exit_code == 0 and muted.stdout.startswith(f"story {story} muted until ")
    snoozed = invoke(["snooze", "rule", "venezuela-oil", "--until", "2099-01-01T00:00"], env)
    assert "rule venezuela-oil snoozed until 2099-01-01T00:00:00+00:00" in snoozed.stdout
    assert invoke(["snooze", "rule", "x", "--until", "2000-01-01"], env).exit_code == 2
    status = json.loads(invoke(["status", "--json"], env).stdout)
    assert [(q["kind"], q["id"]) for q in status["quiet"]] == [
        ("story", story),
        ("rule", "venezuela-oil"),
    ]
    assert status["feedback"] == {first["rule"]: {"not-relevant": 1}}
    plain = invoke(["status"], env).stdout
    assert f"muted: story {story} until" in plain and "snoozed: rule venezuela-oil" in plain
    lifted = invoke(["mute", "story", story, "--off"], env)
    assert lifted.stdout.strip() == f"story {story}: no longer muted"
    status = json.loads(invoke(["status", "--json"], env).stdout)
    assert [q["id"] for q in status["quiet"]] == ["venezuela-oil"]
