"""Scale-out: one poll process, two process workers and two dispatchers share one Redis.

2,000 articles, each its own story and each matching the one rule, are replayed through five
real ``monitor run --role …`` processes into a webhook receiver on 127.0.0.1. Every alert must
arrive exactly once, every item must pass through the items stream and the process role once,
and both workers of each role must have taken part. Then a second source brings follow-ups,
republications and re-sent entries of earlier articles: each follow-up is one more delivery of
its story's alert, the others are none. Runs on the embedded Redis, on the server at
``MONITOR_TEST_REDIS_URL`` and on a local Redis Cluster of three masters (the ``redis_client``
fixture), under a key prefix of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis, UnixDomainSocketConnection
from redis.exceptions import ResponseError

from monitor.core.alerts import alert_id
from monitor.core.matcher import Matcher
from monitor.core.rules import build_config
from monitor.models import Item
from monitor.sources.replay import item_from_json, read_items
from monitor.store import Store
from monitor.store.commands import is_cluster
from monitor.store.stories import story_id
from monitor.store.streams import DISPATCH_GROUP, PROCESS_GROUP
from tests import scale_corpus
from tests.conftest import WITH_CLUSTER, connected
from tests.scale_corpus import Article
from tests.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = 2000
LATE = 10  # follow-ups, republications and re-sent entries, each, in the second phase
RULE = "probe"
SEED = 6
PUBLISHED = "2026-01-05T10:00:00+00:00"
# Generous bounds on waiting for something to happen; nothing here is timed.
STARTUP_S = 60.0
DELIVERY_S = 180.0
STOP_S = 60.0
PROXIES = ("http_proxy", "https_proxy", "all_proxy")

# An error or a traceback in a log, in any of its formats (key=value text, JSON lines).
TROUBLE = re.compile(
    r'Traceback|\b(ERROR|CRITICAL)\b|\blevel="?(error|critical)\b|"level":"(error|critical)"'
)

Delivered = tuple[str, str, bool]  # alert id, item id, follow-up


def rules_yaml(items: Path, late: Path, hook_url: str) -> str:
    """The first source is read once (its interval outlasts the test); the second every second,
    so files written into it mid-test are picked up."""
    return f"""
sources:
  - {{id: wire, type: replay, path: {json.dumps(str(items))}, every: 1h}}
  - {{id: late, type: replay, path: {json.dumps(str(late))}, every: 1s}}
rules:
  - id: {RULE}
    name: Scale-out probe
    query: {scale_corpus.MARKER}
    channels: [hook]
channels:
  - {{id: hook, type: webhook, url: {json.dumps(hook_url)}}}
"""


def as_item(article: Article) -> Item:
    return item_from_json(article.to_json(), "wire", f"{article.key}.json", 0, datetime.now(UTC))


def test_the_corpus_gives_each_article_its_own_words_and_one_match() -> None:
    """What the scale-out test relies on: articles share no word but the marker, and the rule
    matches each of them, their follow-ups and their republications."""
    found = scale_corpus.articles(300, seed=SEED, published=PUBLISHED)
    owners: dict[str, str] = {}
    for article in found:
        assert len(set(article.words)) == scale_corpus.WORDS_PER_ARTICLE
        for word in article.words:
            assert owners.setdefault(word, article.key) == article.key, word
    follow_up = scale_corpus.follow_up(found[0], "f", seed=1)
    assert sorted(follow_up.words) == sorted(found[0].words)
    assert (follow_up.text, follow_up.url) != (found[0].text, found[0].url)
    config = build_config([("r.yaml", rules_yaml(Path("i"), Path("l"), "http://127.0.0.1:9/"))], {})
    matcher = Matcher(config.rules)
    for article in [*found, follow_up, scale_corpus.republication(found[1], "r")]:
        assert [m.rule for m in matcher.match(as_item(article))] == [RULE], article.key


# --------------------------------------------------------------------------- the processes


@dataclass
class Daemon:
    """One ``monitor run --role …`` process; its log (stderr) goes to a file."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


@dataclass
class Fleet:
    """The processes of one test, started with the same settings but their own data dir."""

    directory: Path
    env: dict[str, str]
    daemons: dict[str, Daemon] = field(default_factory=dict)

    async def start(self, role: str, name: str) -> asyncio.subprocess.Process:
        log = self.directory / f"{name}.log"
        env = {**self.env, "MONITOR_DATA_DIR": str(self.directory / name)}
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "monitor", "run", "--role", role),
                cwd=self.directory,  # no .env of the developer's is read
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        self.daemons[name] = Daemon(name, process, log)
        return process

    async def stop(self) -> dict[str, int | str]:
        """SIGTERM to all (they drain and exit), then wait for them: each one's exit code, or
        what became of one that did not exit (it is killed)."""
        for daemon in self.daemons.values():
            if daemon.process.returncode is None:
                daemon.process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(exit_code(d.process, STOP_S) for d in self.daemons.values()))
        return dict(zip(self.daemons, codes, strict=True))

    async def kill(self) -> None:
        for daemon in self.daemons.values():
            if daemon.process.returncode is None:
                with suppress(ProcessLookupError):
                    daemon.process.kill()
                await exit_code(daemon.process, STOP_S)

    def tails(self, lines: int = 8) -> str:
        return "\n".join(
            f"--- {d.name} (exit {d.process.returncode}):\n" + "\n".join(d.lines()[-lines:])
            for d in self.daemons.values()
        )


def process_state(pid: int) -> str:
    """The state letter Linux gives the process (``R``, ``S``, ``Z``…), or ``gone``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "gone"


async def exit_code(process: asyncio.subprocess.Process, within_s: float) -> int | str:
    """The exit code, waited for at most ``within_s``; after that the process is killed and
    the answer says what state it was in (``R`` running, ``Z`` exited but not reaped, …)."""
    try:
        return await asyncio.wait_for(process.wait(), within_s)
    except TimeoutError:
        state = process_state(process.pid)
    with suppress(ProcessLookupError):
        process.kill()
    with suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 10)
    return f"no exit within {within_s:g} s (state {state})"


@asynccontextmanager
async def fleet(directory: Path, env: dict[str, str]) -> AsyncIterator[Fleet]:
    """Processes that are never left behind, whatever happens in the test; ``directory``
    (which must exist) holds their logs and data directories."""
    started = Fleet(directory, env)
    try:
        yield started
    finally:
        await started.kill()


def daemon_env(redis_url: str, prefix: str, rules: Path) -> dict[str, str]:
    """This environment without MONITOR_* settings or proxies, plus the test's settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MONITOR_") and name.lower() not in PROXIES
    }
    python_path = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(
        PYTHONPATH=os.pathsep.join(python_path),
        MONITOR_REDIS_URL=redis_url,
        MONITOR_KEY_PREFIX=prefix,
        MONITOR_RULES_DIR=str(rules),
        MONITOR_HTTP_PORT="0",
        MONITOR_LOG_LEVEL="INFO",
        MONITOR_LOG_FORMAT="text",
    )
    return env


def url_of(client: Redis) -> str:
    """A URL the processes can reach ``client``'s server at: the embedded one listens on a Unix
    socket, a cluster at one of its nodes, the other is at ``MONITOR_TEST_REDIS_URL``."""
    if is_cluster(client):
        node = client.get_default_node()  # type: ignore[attr-defined]
        return f"redis+cluster://{node.host}:{node.port}"
    pool = client.connection_pool
    if issubclass(pool.connection_class, UnixDomainSocketConnection):
        return f"unix://{pool.connection_kwargs['path']}"
    url = os.environ.get("MONITOR_TEST_REDIS_URL")
    assert url, "a TCP client without MONITOR_TEST_REDIS_URL"
    return url


async def until(
    condition: Callable[[], Awaitable[bool]], within_s: float, state: Callable[[], Awaitable[str]]
) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not reached within {within_s:g} s; {await state()}")
        await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- Redis


async def caught_up(client: Redis, stream: str, group: str) -> bool:
    """Whether ``group`` has read every entry of ``stream`` and acknowledged all it read."""
    if not await client.exists(stream):
        return False
    groups = {info["name"]: info for info in await client.xinfo_groups(stream)}
    if group not in groups:
        return False
    last = (await client.xinfo_stream(stream))["last-generated-id"]
    return bool(groups[group]["pending"] == 0 and groups[group]["last-delivered-id"] == last)


async def payloads(client: Redis, stream: str) -> list[dict[str, Any]]:
    """Every entry of ``stream``, oldest first."""
    out: list[dict[str, Any]] = []
    start = "-"
    while batch := cast(list[Any], await client.xrange(stream, min=start, count=1000)):
        out.extend(json.loads(fields["data"]) for _, fields in batch)
        start = f"({batch[-1][0]}"
    return out


def pid_of(consumer: str) -> int:
    """A process names its consumer ``<host>-<pid>`` (``monitor.app.consumer_name``)."""
    return int(consumer.rpartition("-")[2])


@dataclass
class Group:
    """One consumer group, and the consumers seen holding entries in it (read, not yet
    acknowledged): those that did some of its work."""

    stream: str
    name: str
    busy: set[str] = field(default_factory=set)

    async def look(self, client: Redis) -> None:
        with suppress(ResponseError):  # the group does not exist yet
            for consumer in await client.xinfo_consumers(self.stream, self.name):
                if consumer["pending"]:
                    self.busy.add(consumer["name"])

    @property
    def pids(self) -> set[int]:
        return {pid_of(name) for name in self.busy}


@asynccontextmanager
async def watching(client: Redis, *groups: Group) -> AsyncIterator[None]:
    """While in the block, note the consumers of ``groups`` every 50 ms."""

    async def watch() -> None:
        while True:
            for group in groups:
                await group.look(client)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=10)
        if not task.cancelled() and task.done() and (error := task.exception()) is not None:
            raise error


async def settled(store: Store) -> bool:
    """Whether every item was processed and every alert delivered, and no retry waits."""
    client, keys = store.client, store.keys
    return (
        await caught_up(client, keys.items_stream, PROCESS_GROUP)
        and await caught_up(client, keys.outbox_stream, DISPATCH_GROUP)
        and await store.delayed_count() == 0
    )


# --------------------------------------------------------------------------- the test


@pytest.fixture(params=WITH_CLUSTER)
async def redis_client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Redis]:
    """Each Redis on offer, a Redis Cluster included."""
    async with connected(request, tmp_path) as client:
        yield client


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_scale_out_delivers_every_alert_once_and_processes_every_item_once(
    redis_client: Redis, key_prefix: str, tmp_path: Path
) -> None:
    store = Store(redis_client, prefix=key_prefix)
    found = scale_corpus.articles(ARTICLES, seed=SEED, published=PUBLISHED)
    items_dir, late_dir, rules = tmp_path / "items", tmp_path / "late", tmp_path / "rules"
    scale_corpus.write(items_dir, found)
    for directory in (late_dir, rules, tmp_path / "run"):
        directory.mkdir()
    originals = {item.guid: item for item in read_items(items_dir, "wire")[0]}
    assert len(originals) == ARTICLES

    def first_of(article: Article) -> Delivered:
        item = originals[article.key]
        return alert_id(RULE, story_id(item.id)), item.id, False

    expected = {first_of(article) for article in found}
    assert len({alert for alert, _, _ in expected}) == ARTICLES  # 2,000 stories
    # Phase 2: a follow-up of each of 10 stories, 10 republished copies (new URL, same text:
    # duplicates) and 10 re-sent entries (same URL: seen), written into the second source.
    follow_ups = [scale_corpus.follow_up(a, f"late-f{n}", n) for n, a in enumerate(found[:LATE])]
    republished = [
        scale_corpus.republication(a, f"late-r{n}") for n, a in enumerate(found[LATE : 2 * LATE])
    ]
    resent = [
        scale_corpus.resent(a, f"late-s{n}") for n, a in enumerate(found[2 * LATE : 3 * LATE])
    ]
    processing = Group(store.keys.items_stream, PROCESS_GROUP)
    dispatching = Group(store.keys.outbox_stream, DISPATCH_GROUP)

    async with WebhookReceiver() as hook:
        (rules / "watch.yaml").write_text(rules_yaml(items_dir, late_dir, hook.url))
        env = daemon_env(url_of(redis_client), key_prefix, rules)
        async with (
            fleet(tmp_path / "run", env) as processes,
            watching(redis_client, processing, dispatching),
        ):

            async def state() -> str:
                return (
                    f"{len(hook.deliveries)} deliveries, items {await store.items.length()}, "
                    f"outbox {await store.outbox.length()}, dead {await store.dead.length()}\n"
                    + processes.tails()
                )

            workers = {(await processes.start("process", f"process-{n}")).pid for n in (1, 2)}
            dispatchers = {(await processes.start("dispatch", f"dispatch-{n}")).pid for n in (1, 2)}

            async def all_running() -> bool:  # the line each role logs as its loop starts
                return all(
                    any("running roles=" in line for line in d.lines())
                    for d in processes.daemons.values()
                )

            await until(all_running, STARTUP_S, state)  # all four wait before the work comes
            await processes.start("poll", "poll")

            async def phase_one_done() -> bool:
                return len(hook.deliveries) >= ARTICLES and await settled(store)

            await until(phase_one_done, DELIVERY_S, state)
            assert hook.problems == []
            assert [key for key, count in hook.counts().items() if count != 1] == []
            assert {(d.alert, d.item, d.followup) for d in hook.deliveries} == expected

            scale_corpus.write(late_dir, [*follow_ups, *republished, *resent])
            late = {item.guid: item for item in read_items(late_dir, "late")[0]}
            expected |= {
                (first_of(original)[0], late[article.key].id, True)
                for original, article in zip(found[:LATE], follow_ups, strict=True)
            }
            must_pass = {late[a.key].id for a in [*follow_ups, *republished]}

            async def phase_two_done() -> bool:
                taken = await store.history.since(0)
                return (
                    len(hook.deliveries) >= ARTICLES + LATE
                    and must_pass <= {recent.item.id for recent in taken}
                    and await settled(store)
                )

            await until(phase_two_done, DELIVERY_S, state)
            codes = await processes.stop()
            assert codes == dict.fromkeys(processes.daemons, 0), await state()

    # Delivered: each expected alert exactly once, nothing else.
    assert hook.problems == []
    assert [key for key, count in hook.counts().items() if count != 1] == []
    delivered = Counter((d.alert, d.item, d.followup) for d in hook.deliveries)
    assert [entry for entry, count in delivered.items() if count != 1] == []
    assert set(delivered) == expected
    assert len(expected) == ARTICLES + LATE

    # Processed: every item was taken in as new once (the history records what the process
    # role took in), the re-sent ones never; nothing is left pending, and the streams dropped
    # every entry all their groups were done with.
    taken_in = Counter(recent.item.id for recent in await store.history.since(0))
    first_pass = {item.id for item in originals.values()}
    assert [item for item in first_pass if taken_in[item] != 1] == []
    assert set(taken_in) - first_pass == must_pass
    assert await settled(store)
    assert await store.items.length() == await store.outbox.length() == 0
    assert await store.dead.length() == 0

    # Shared: both process workers and both dispatchers did some of the work, and no one else.
    assert processing.pids == workers, processing.busy
    assert dispatching.pids == dispatchers, dispatching.busy
    trouble = [
        f"{d.name}: {line}"
        for d in processes.daemons.values()
        for line in d.lines()
        if TROUBLE.search(line)
    ]
    assert trouble == []
