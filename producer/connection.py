"""aclq's own Redis clients (payloads, replies, heartbeats, status), built from ACLQ_REDIS_URL:
a server's URL, or sentinels' (``sentinel://``), whose clients follow the primary the sentinels
name through a failover (redis-py's Sentinel support; kombu's Sentinel transport does the same
for the broker connection, producer/dispatch.py).
"""

from collections.abc import Sequence
from typing import Any, Final, cast

import hiredis
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
from redis._parsers.encoders import Encoder
from redis.backoff import ExponentialBackoff
from redis.connection import HiredisRespSerializer, PythonRespSerializer

from producer.errors import ConfigError
from producer.settings import SentinelTarget, Settings

#: a command argument longer than this is a large value (redis-py's own cut-off)
LARGE_ARGUMENT_BYTES: Final = 6000


#: redis-py's pure-Python packer, for the commands that :func:`_carries_large_value`
_LARGE_VALUES: Final = PythonRespSerializer(LARGE_ARGUMENT_BYTES, Encoder("utf-8", "strict", False).encode)


def _carries_large_value(args: Sequence[Any]) -> bool:
    """Whether a command is for redis-py's pure-Python packer, which passes a large value on as
    its own buffer (hiredis copies it, ~0.9 ns a byte: a 1 MiB SET 920 us against 2), and
    packs a bytearray, which hiredis refuses. A type test and a length an argument: the check
    must cost less than what hiredis saves on the thousands of small commands it packs."""
    for arg in args:
        kind = type(arg)
        if kind is memoryview or kind is bytearray or (kind is bytes and len(arg) > LARGE_ARGUMENT_BYTES):
            return True
    return False


class CommandPacker:
    """redis-py's own commands onto the wire, each by the packer that is faster for it: hiredis'
    for small arguments (a claim's EVALSHA of 11: 2.9 us against 7.1 us), redis-py's pure-Python
    one for a command that :func:`_carries_large_value`. aclq's round trips pack their commands
    themselves (:func:`_packed`)."""

    def __init__(self) -> None:
        self._small = HiredisRespSerializer()
        self._large = _LARGE_VALUES

    def pack(self, *args: Any) -> list[bytes]:
        return (self._large if _carries_large_value(args) else self._small).pack(*args)  # type: ignore[no-any-return]


#: packed chunks below this size are joined into one socket write (:func:`_packed`)
JOIN_BELOW_BYTES: Final = 1 << 16


#: redis-py connection options of every aclq client:
#: - hiredis parses replies (a 1 MiB reply in 0.26 ms, against 1.9 ms for the pure-Python
#:   parser); commands are packed by :class:`CommandPacker`;
#: - no socket timeout (redis-py 8 defaults to 5 s), because waiting for a result is a
#:   blocking command bounded by its own timeout; keepalive notices a peer that vanished;
#: - no cap on connections, as redis-py's sync pool has none: its asyncio pool refuses a 101st
#:   ("Too many connections"), and each wait for a job that does not name the client's inbox
#:   holds one while it blocks, so gathering 150 such waits on one event loop failed.
ASYNC_REDIS_OPTIONS: Final[dict[str, Any]] = {
    "socket_timeout": None,
    "socket_keepalive": True,
    "max_connections": 2**31,
}
REDIS_OPTIONS: Final[dict[str, Any]] = {**ASYNC_REDIS_OPTIONS, "command_packer": CommandPacker()}
#: seconds to reach a sentinel or wait for its answer: a sentinel answers at once or not at
#: all, and a start-up must not hang on an address nobody listens on
SENTINEL_TIMEOUT_S: Final = 2.0
SENTINEL_OPTIONS: Final[dict[str, Any]] = {
    "socket_timeout": SENTINEL_TIMEOUT_S,
    "socket_connect_timeout": SENTINEL_TIMEOUT_S,
}
#: seconds (about) a command through the sentinels' primary waits for one to be there again: a
#: failover is an outage with an end (the sentinels' down-after-milliseconds, an election, a
#: promotion: seconds), which callers are better off not seeing. Past it the command fails with
#: BrokerConnectionError. A plain URL keeps redis-py's short retry: a server that is down has no
#: known return, and its callers are told at once.
FAILOVER_S: Final = 30
#: one retry a second once the backoff reaches its cap, so the retry count is about the seconds
_FAILOVER_BACKOFF: Final = ExponentialBackoff(cap=1.0, base=0.05)


def redis_client(settings: Settings) -> redis.Redis:
    """A client of the configured Redis; ConfigError at once for sentinels that cannot name the
    primary (:func:`check_sentinels`)."""
    target = settings.sentinel()
    if target is None:
        return redis.Redis.from_url(settings.require_url(), **REDIS_OPTIONS)
    check_sentinels(target)
    sentinel = redis.sentinel.Sentinel(list(target.sentinels), sentinel_kwargs=dict(SENTINEL_OPTIONS))
    retry = redis.retry.Retry(_FAILOVER_BACKOFF, FAILOVER_S)
    client: redis.Redis = sentinel.master_for(
        target.master_name,
        _Primary,
        connection_class=PrimaryConnection,
        **_primary(target),
        retry=retry,
        **REDIS_OPTIONS,
    )
    return client


def round_trip(
    client: redis.Redis, commands: Sequence[Sequence[Any]], transaction: bool = False, scripts: Sequence[str] = ()
) -> list[Any]:
    """Send ``commands`` (each its raw arguments: ``("GET", key)``) in one write and read their
    replies, as Redis gives them (no redis-py response callbacks: ``SET`` answers ``b"OK"``);
    ``transaction``: inside ``MULTI``/``EXEC``, all or nothing, the replies ``EXEC``'s.
    What a redis-py pipeline does, without its bookkeeping: 5 commands cost ~200 us of CPU here
    against ~255 through a ``Pipeline`` (docs/performance.md). An error reply raises, the first
    one, once every reply is read; the client's retry policy applies to the whole trip, as it
    does to a pipeline. ``scripts``: the Lua the commands call by sha (``EVALSHA``), which a
    server that lost them (restarted) is given, and the commands sent again: what of them ran
    the first time must be safe to run twice."""
    try:
        return _round_trip(client, commands, transaction)
    except redis.exceptions.NoScriptError:
        if not scripts:
            raise
        for script in scripts:
            client.script_load(script)
        return _round_trip(client, commands, transaction)


def _round_trip(client: redis.Redis, commands: Sequence[Sequence[Any]], transaction: bool) -> list[Any]:
    trip = _trip(commands, transaction)
    writes = _packed(trip)
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        replies = connection.retry.call_with_retry(
            lambda: _exchange(connection, writes, len(trip)), lambda _: connection.disconnect()
        )
    except BaseException:
        connection.disconnect()  # replies may be left unread: the connection is out of step
        raise
    finally:
        pool.release(connection)
    return _results(replies, transaction)


def _exchange(connection: redis.Connection, writes: list[bytes | memoryview], commands: int) -> list[Any]:
    connection.send_packed_command(writes)
    replies: list[Any] = []
    for _ in range(commands):
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:  # the connection is in step: the next reply follows
            replies.append(exc)
    return replies


async def async_round_trip(
    client: redis.asyncio.Redis, commands: Sequence[Sequence[Any]], transaction: bool = False
) -> list[Any]:
    """:func:`round_trip` for asyncio, less the scripts (the asyncio client sends none). A trip
    whose task is cancelled mid-way (a wait whose caller went away) drops its connection, as
    one cut short by an error: its replies would otherwise be read as the next trip's."""
    trip = _trip(commands, transaction)
    writes = _packed(trip)
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        replies = await connection.retry.call_with_retry(
            lambda: _async_exchange(connection, writes, len(trip)), lambda _: connection.disconnect()
        )
    except BaseException:
        await connection.disconnect(nowait=True)  # nowait: nothing to wait for in a cancelled task
        raise
    finally:
        await pool.release(connection)
    return _results(replies, transaction)


async def _async_exchange(
    connection: redis.asyncio.Connection, writes: list[bytes | memoryview], commands: int
) -> list[Any]:
    await connection.send_packed_command(cast(list[bytes], writes))  # writelines takes memoryviews too
    replies: list[Any] = []
    for _ in range(commands):
        try:
            replies.append(await connection.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def _packed(commands: Sequence[Sequence[Any]]) -> list[bytes | memoryview]:
    """Commands (each its raw arguments, its name one word) as the socket writes to make: the
    small ones packed by hiredis straight from their arguments, those that
    :func:`_carries_large_value` by redis-py's packer, a large value passed on uncopied, and
    every run of small pieces joined into one write. redis-py's ``pack_commands`` spends ~4 us
    of Python a command around hiredis (a worker's answer to 64 gathered jobs, 131 commands:
    469 us against 99), and writes every ~6 KB with a ``sendall`` of its own. DataError for an
    argument Redis cannot take (None, a bool), before anything is sent."""
    writes: list[bytes | memoryview] = []
    run: list[bytes | memoryview] = []
    for command in commands:
        if not _carries_large_value(command):
            try:
                run.append(hiredis.pack_command(tuple(command)))
            except TypeError as exc:
                raise redis.DataError(f"{command[0]}: {exc}") from None
            continue
        for chunk in _LARGE_VALUES.pack(*command):
            if len(chunk) < JOIN_BELOW_BYTES:
                run.append(chunk)
                continue
            if run:
                writes.append(b"".join(run))
                run = []
            writes.append(chunk)
    if run:
        writes.append(b"".join(run))
    return writes


def _trip(commands: Sequence[Sequence[Any]], transaction: bool) -> Sequence[Sequence[Any]]:
    return [("MULTI",), *commands, ("EXEC",)] if transaction else commands


def _results(replies: list[Any], transaction: bool) -> list[Any]:
    """The trip's replies (a transaction's: those inside ``EXEC``); the first error raised."""
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply  # a command refused (in a transaction: EXEC then aborted it)
    if not transaction:
        return replies
    results: list[Any] = replies[-1]
    for result in results:
        if isinstance(result, redis.ResponseError):
            raise result  # a command that failed as it ran; the others of the transaction ran
    return results


def async_redis_client(settings: Settings) -> redis.asyncio.Redis:
    """:func:`redis_client` for asyncio (the sentinels are checked before it returns)."""
    target = settings.sentinel()
    if target is None:
        return redis.asyncio.Redis.from_url(settings.require_url(), **ASYNC_REDIS_OPTIONS)
    check_sentinels(target)
    sentinel = redis.asyncio.sentinel.Sentinel(list(target.sentinels), sentinel_kwargs=dict(SENTINEL_OPTIONS))
    retry = redis.asyncio.retry.Retry(_FAILOVER_BACKOFF, FAILOVER_S)
    client: redis.asyncio.Redis = sentinel.master_for(
        target.master_name,
        _AsyncPrimary,
        connection_class=_AsyncPrimaryConnection,
        **_primary(target),
        retry=retry,
        **ASYNC_REDIS_OPTIONS,
    )
    return client


class PrimaryConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the sentinels' primary that asks them where it is at every connect.

    redis-py's own asks only on a connection's first connect: a command retried after a
    failover reconnects to the address the connection had, the old primary, until its retries
    run out (redis/redis-py#3874; seen here as every caller failing 30 s after a failover).
    """

    def _connect(self) -> Any:
        self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()


class _AsyncPrimaryConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """:class:`PrimaryConnection` for asyncio."""

    async def _connect(self) -> None:
        self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()


class _Primary(redis.Redis):
    """The sentinels' primary; closing it closes the connections to the sentinels too."""

    def close(self) -> None:
        super().close()
        pool = cast(redis.sentinel.SentinelConnectionPool, self.connection_pool)
        for sentinel in pool.sentinel_manager.sentinels:
            sentinel.close()


class _AsyncPrimary(redis.asyncio.Redis):
    """:class:`_Primary` for asyncio."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = cast(redis.asyncio.sentinel.SentinelConnectionPool, self.connection_pool)
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def _primary(target: SentinelTarget) -> dict[str, Any]:
    return {"db": target.db, "username": target.username, "password": target.password}


def check_sentinels(target: SentinelTarget) -> tuple[str, int]:
    """The primary's address as the first sentinel that knows it says; ConfigError naming
    ACLQ_REDIS_URL when no sentinel answers, or none monitors ``target.master_name`` (each
    sentinel is given SENTINEL_TIMEOUT_S: a start-up never hangs on them)."""
    unreachable: list[str] = []
    monitored: set[str] = set()
    for host, port in target.sentinels:
        with redis.Redis(host=host, port=port, **SENTINEL_OPTIONS) as sentinel:
            try:
                masters = sentinel.sentinel_masters()
            except redis.RedisError as exc:
                unreachable.append(f"{host}:{port} ({exc})")
                continue
        monitored.update(masters)
        state = masters.get(target.master_name)
        if state and not state.get("is_sdown") and not state.get("is_odown"):
            return state["ip"], int(state["port"])
    if len(unreachable) == len(target.sentinels):
        raise ConfigError(f"ACLQ_REDIS_URL: no sentinel reachable: {', '.join(unreachable)}")
    if target.master_name not in monitored:
        named = ", ".join(sorted(monitored)) or "none"
        raise ConfigError(
            f"ACLQ_REDIS_URL: no sentinel at {target.addresses()} monitors a master named "
            f"{target.master_name!r} (they monitor: {named})"
        )
    raise ConfigError(
        f"ACLQ_REDIS_URL: the sentinels at {target.addresses()} report master {target.master_name!r} down "
        f"and no replica promoted yet"
    )
