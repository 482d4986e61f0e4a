"""Lua scripts called by their SHA inside ordinary pipelines, so a batch's many small writes
and reads cost one command each and no round trip of their own.

Redis forgets its scripts when it restarts. ``execute`` runs a pipeline without raising on the
first error; any script call that came back ``NOSCRIPT`` is run again, alone, once the scripts are
loaded (this set's, and any other set's whose script was called in the same pipeline), and its
reply takes its place. Only script calls are rerun: every other command of the
pipeline has already taken effect once.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, RedisError

from monitor.errors import StoreError
from monitor.store.commands import is_cluster

_CALLS: weakref.WeakKeyDictionary[Pipeline, dict[int, tuple[Any, ...]]] = (
    weakref.WeakKeyDictionary()
)
"""The script calls queued on each pipeline, by position: rerun after ``NOSCRIPT``."""
_KNOWN: dict[str, str] = {}
"""Every script of every set by its SHA: a pipeline may call scripts of several sets."""


class Scripts:
    """A set of Lua scripts, known by name, called with ``call`` in a pipeline."""

    def __init__(self, client: Redis, **sources: str) -> None:
        self.client = client
        self.sources = sources
        self.shas = {
            name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for name, source in sources.items()
        }
        _KNOWN.update({self.shas[name]: source for name, source in sources.items()})

    def call(self, pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
        """Queue the script ``name`` on ``pipe`` (as a plain command: a cluster pipeline routes
        it by its keys, which its ``evalsha`` method refuses to)."""
        command = ("EVALSHA", self.shas[name], len(keys), *keys, *args)
        _CALLS.setdefault(pipe, {})[len(pipe)] = command
        pipe.execute_command(*command)

    async def load(self, also: Iterable[str] = ()) -> None:
        """Load every script of the set, and the scripts of SHAs ``also`` (one round trip)."""
        sources = dict.fromkeys(self.sources.values())
        sources.update(dict.fromkeys(_KNOWN[sha] for sha in also if sha in _KNOWN))
        if is_cluster(self.client):  # each primary learns them: not pipelined
            for source in sources:
                await self.client.script_load(source)
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for source in sources:
                pipe.script_load(source)
            await pipe.execute()

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """Run ``pipe``; script calls Redis no longer knew are rerun after loading the scripts.
        Any other error becomes ``StoreError``."""
        calls = _CALLS.pop(pipe, {})
        try:
            replies = list(await pipe.execute(raise_on_error=False))
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                await self.load(str(calls[index][1]) for index in missing)
                async with self.client.pipeline(transaction=False) as again:
                    for index in missing:
                        again.execute_command(*calls[index])
                    for index, reply in zip(missing, await again.execute(), strict=True):
                        replies[index] = reply
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis pipeline failed: {exc}") from exc
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreError(f"Redis pipeline failed: {reply}") from reply
        return replies
