"""producer.connection's round trips (the sync one and its asyncio twin) against a real server:
replies in order, errors after the whole trip is read, and a connection never reused out of
step."""

import asyncio
import functools
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from producer.connection import ASYNC_REDIS_OPTIONS, REDIS_OPTIONS, async_round_trip, round_trip


@pytest.fixture
def r(redis_server):
    client = redis.Redis.from_url(redis_server.url, **REDIS_OPTIONS)
    yield client
    client.close()


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["sync", "async"])
def trip(request, r, redis_server, loop) -> Callable[..., list[Any]]:
    """``round_trip``, or ``async_round_trip`` run to its end on one event loop (whose client
    keeps its connections from one trip to the next, as the sync one's does)."""
    if request.param == "sync":
        yield functools.partial(round_trip, r)
        return
    client = redis.asyncio.Redis.from_url(redis_server.url, **ASYNC_REDIS_OPTIONS)
    yield lambda *args, **kwargs: loop.run_until_complete(async_round_trip(client, *args, **kwargs))
    loop.run_until_complete(client.aclose())


def test_replies_come_back_in_order_as_redis_gives_them(r, trip):
    key, big = f"rt:{uuid.uuid4().hex}", b"x" * (1 << 20)  # a large value goes as its own buffer
    replies = trip([("SET", key, big), ("GET", key), ("EXPIRE", key, 60), ("DEL", key), ("GET", key)])
    assert replies == [b"OK", big, 1, 1, None]


def test_an_error_reply_raises_once_every_reply_is_read(r, trip):
    key = f"rt:{uuid.uuid4().hex}"
    with pytest.raises(redis.exceptions.NoScriptError):
        trip([("SET", key, "1"), ("EVALSHA", "0" * 40, 0), ("INCR", key), ("LPUSH", key, "x")])
    assert r.get(key) == b"2"  # the commands after the errors ran
    assert trip([("GET", key)]) == [b"2"]  # the connection is in step: no stale reply


def test_a_trip_interrupted_mid_read_drops_its_connection(r, monkeypatch):
    key = f"rt:{uuid.uuid4().hex}"
    connection = r.connection_pool.get_connection()
    r.connection_pool.release(connection)  # the one round_trip will take
    real = connection.read_response

    def interrupted(*args, **kwargs):
        monkeypatch.setattr(connection, "read_response", real)
        raise KeyboardInterrupt  # after the commands were sent, before a reply was read

    monkeypatch.setattr(connection, "read_response", interrupted)
    with pytest.raises(KeyboardInterrupt):
        round_trip(r, [("SET", key, "1"), ("GET", key)])
    assert connection._sock is None  # disconnected, so its unread replies are never taken for another's
    assert round_trip(r, [("GET", key)]) == [b"1"]


def test_a_transaction_answers_execs_replies_and_raises_what_failed_inside_it(r, trip):
    key, other = f"rt:{uuid.uuid4().hex}", f"rt:{uuid.uuid4().hex}"
    reserve = [("SET", key, "1", "NX", "EX", 60), ("SET", key, "2", "NX")]
    assert trip(reserve, transaction=True) == [b"OK", None]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):  # fails as it runs: the rest ran
        trip([("LPUSH", key, "x"), ("SET", other, "3")], transaction=True)
    assert r.get(other) == b"3"
    with pytest.raises(redis.ResponseError):  # refused when queued: EXEC aborts them all
        trip([("SET", other, "4"), ("GET",)], transaction=True)
    assert r.get(other) == b"3"
    assert trip([("GET", other)]) == [b"3"]  # in step after both


def test_scripts_the_server_lost_are_loaded_and_the_trip_sent_again(r):
    """The sync trip's (the transport's and the worker's scripts); the asyncio client sends none."""
    script = f"return '{uuid.uuid4().hex}'"  # a script this server has never seen
    sha = hashlib.sha1(script.encode()).hexdigest()
    assert round_trip(r, [("EVALSHA", sha, 0)], scripts=[script]) == [script.split("'")[1].encode()]
    r.script_flush()  # as a restart leaves it
    assert round_trip(r, [("EVALSHA", sha, 0)], scripts=[script]) == [script.split("'")[1].encode()]


def test_an_async_trip_cancelled_mid_wait_drops_its_connection(r, redis_server, loop):
    """A wait whose caller went away: its BLPOP, left on a connection the pool hands out again,
    would take the next value pushed and give it to the next trip as that trip's reply."""
    key, queue = f"rt:{uuid.uuid4().hex}", f"rt:{uuid.uuid4().hex}"
    client = redis.asyncio.Redis.from_url(redis_server.url, **{**ASYNC_REDIS_OPTIONS, "max_connections": 1})

    def blocked() -> int:
        return int(r.info("clients")["blocked_clients"])

    async def scenario() -> list[Any]:
        waiting = asyncio.ensure_future(async_round_trip(client, [("SET", key, "1"), ("BLPOP", queue, 30)]))
        while not blocked():  # until the server holds the BLPOP
            assert not waiting.done(), waiting.exception()
            await asyncio.sleep(0.001)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        deadline = time.monotonic() + 10  # the server drops the BLPOP once the connection closes
        while blocked() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert not blocked(), "the cancelled trip's connection is still open, its BLPOP waiting"
        r.rpush(queue, "v")
        return await async_round_trip(client, [("GET", key), ("LLEN", queue)])  # the pool's one connection

    try:
        assert loop.run_until_complete(scenario()) == [b"1", 1]
    finally:
        loop.run_until_complete(client.aclose())
