"""producer.connection.round_trip against a real server: replies in order, errors after the
whole trip is read, and a connection never reused out of step."""

import hashlib
import uuid

import pytest
import redis

from producer.connection import REDIS_OPTIONS, round_trip


@pytest.fixture
def r(redis_server):
    client = redis.Redis.from_url(redis_server.url, **REDIS_OPTIONS)
    yield client
    client.close()


def test_replies_come_back_in_order_as_redis_gives_them(r):
    key, big = f"rt:{uuid.uuid4().hex}", b"x" * (1 << 20)  # a large value goes as its own buffer
    replies = round_trip(r, [("SET", key, big), ("GET", key), ("EXPIRE", key, 60), ("DEL", key), ("GET", key)])
    assert replies == [b"OK", big, 1, 1, None]


def test_an_error_reply_raises_once_every_reply_is_read(r):
    key = f"rt:{uuid.uuid4().hex}"
    with pytest.raises(redis.exceptions.NoScriptError):
        round_trip(r, [("SET", key, "1"), ("EVALSHA", "0" * 40, 0), ("INCR", key), ("LPUSH", key, "x")])
    assert r.get(key) == b"2"  # the commands after the errors ran
    assert round_trip(r, [("GET", key)]) == [b"2"]  # the connection is in step: no stale reply


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


def test_a_transaction_answers_execs_replies_and_raises_what_failed_inside_it(r):
    key, other = f"rt:{uuid.uuid4().hex}", f"rt:{uuid.uuid4().hex}"
    reserve = [("SET", key, "1", "NX", "EX", 60), ("SET", key, "2", "NX")]
    assert round_trip(r, reserve, transaction=True) == [b"OK", None]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):  # fails as it runs: the rest ran
        round_trip(r, [("LPUSH", key, "x"), ("SET", other, "3")], transaction=True)
    assert r.get(other) == b"3"
    with pytest.raises(redis.ResponseError):  # refused when queued: EXEC aborts them all
        round_trip(r, [("SET", other, "4"), ("GET",)], transaction=True)
    assert r.get(other) == b"3"
    assert round_trip(r, [("GET", other)]) == [b"3"]  # in step after both


def test_scripts_the_server_lost_are_loaded_and_the_trip_sent_again(r):
    script = f"return '{uuid.uuid4().hex}'"  # a script this server has never seen
    sha = hashlib.sha1(script.encode()).hexdigest()
    assert round_trip(r, [("EVALSHA", sha, 0)], scripts=[script]) == [script.split("'")[1].encode()]
    r.script_flush()  # as a restart leaves it
    assert round_trip(r, [("EVALSHA", sha, 0)], scripts=[script]) == [script.split("'")[1].encode()]
