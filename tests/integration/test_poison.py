"""Poison on the queue, as a buggy or foreign producer would leave it, against live workers: each
entry is dead-lettered with its reason and counted, the workers keep consuming, a good job after
them is answered, and `aclq status` shows the count."""

import base64
import json
import socket
import time
import urllib.request
import uuid

import numpy as np
import pytest
import redis

from producer import Client, Settings, keys
from producer.dispatch import make_celery, queue
from producer.status import fetch_status
from producer.transport import dead_letters
from worker.local import LocalCluster

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


def free_port_pair() -> int:
    """A port P with P + 1 free too: device N serves its metrics on ACLQ_METRICS_PORT + N."""
    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return int(port)


@pytest.fixture(scope="module")
def cluster(redis_server, model_repo):
    settings = Settings(
        redis_url=redis_server.url,
        namespace=f"p{uuid.uuid4().hex[:8]}",
        model_repo=str(model_repo),
        metrics_port=free_port_pair(),
    )
    with LocalCluster(settings, devices=[0, 1]) as running:
        yield running


@pytest.fixture(scope="module")
def envelope(cluster) -> dict:
    """A real message as kombu's own Redis transport lays it (JSON, as a foreign producer
    writes), to make Celery-level poison from."""
    app = make_celery(cluster.settings)
    app.conf.broker_transport = "redis"
    scratch = f"{cluster.settings.namespace}.scratch"
    app.send_task("aclq.infer", args=[["x"]], kwargs={"model": "add"}, queue=queue(scratch))
    r = redis.Redis.from_url(cluster.settings.redis_url)
    raw = r.rpop(scratch)
    r.delete(keys.queue_bell(scratch))
    app.close()
    return json.loads(raw)


def variant(envelope: dict, **changes) -> bytes:
    message = json.loads(json.dumps(envelope))
    for path, value in changes.items():
        target = message
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    return json.dumps(message).encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def poison(envelope: dict) -> dict[str, bytes]:
    """Every kind of entry that is no runnable message, by what is wrong with it."""
    good = json.dumps(envelope)
    return {
        "not JSON": b"not json",
        "empty": b"",
        "binary": bytes(range(256)),
        "a megabyte of noise": np.random.default_rng(0).bytes(1 << 20),
        "not UTF-8": good.replace('"aclq.infer"', '"aclq.infer\xff"').encode("latin-1"),
        "a JSON list": b"[1, 2, 3]",
        "a JSON string": b'"hello"',
        "JSON null": b"null",
        "a number": b"42",
        "an empty object": b"{}",
        "truncated": good[: len(good) // 2].encode(),
        "no delivery tag": variant(envelope, properties__delivery_tag=None),
        "properties a list": variant(envelope, properties=[1]),
        "no routing": variant(envelope, properties__delivery_info={}),
        "no body": variant(envelope, body=None),
        "raw tab in a string (JSON only to Lua)": good.replace('"aclq.infer"', '"aclq\tinfer"').encode(),
        "body not base64": variant(envelope, body="%%%not base64%%%"),
        "body not JSON": variant(envelope, body=b64("not json {")),
        "unknown task": variant(envelope, headers__task="someone.elses.task"),
        "headers a list": variant(envelope, headers=["task"]),
        "pickle": variant(envelope, **{"content-type": "application/x-python-serialize"}),
        "unknown content type": variant(envelope, **{"content-type": "application/x-nonsense"}),
        "no task header, body undecodable": variant(envelope, headers={}, body=b64("{{{")),
        "task args not a list of job ids": variant(envelope, body=b64(json.dumps([[7], {"model": "add"}, {}]))),
        "task without its model": variant(envelope, body=b64(json.dumps([[["x"]], {}, {}]))),
    }


def test_every_kind_of_poison_is_dead_lettered_and_the_workers_go_on(cluster, envelope):
    ns = cluster.settings.namespace
    r = redis.Redis.from_url(cluster.settings.redis_url)
    entries = poison(envelope)
    shared = keys.shared_queue(ns)
    for entry in entries.values():
        r.lpush(shared, entry)
        r.lpush(keys.queue_bell(shared), 1)
    r.lpush(f"{shared}\x06\x169", b"poison at priority 9")  # kombu's list of priority 9
    with Client(cluster.settings) as client:
        np.testing.assert_array_equal(client.infer("add", GOOD, result_timeout_s=60)["c"], GOOD["a"] * 2)
        # Every entry was taken before the good job: it was pushed after them and runs last.
        assert r.llen(shared) == 0
    assert all(worker.poll() is None for worker in cluster.workers.values())  # both still serve
    expected = len(entries) + 1
    # One claim takes many entries: the other worker may still be refusing those it took when the
    # good job is answered. Wait (bounded) for the dead letters to be written, then count exactly.
    deadline = time.monotonic() + 30
    while r.llen(keys.dead_letter(ns)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    dead = dead_letters(r, keys.dead_letter(ns), count=100)
    assert len(dead) == expected, [d["reason"] for d in dead]
    assert {d["entry"] for d in dead} >= {e for e in entries.values() if not e.startswith(b"{")}
    assert fetch_status(cluster.settings).dead_letters == expected  # what `aclq status` shows
    counted = 0.0
    for device in (0, 1):
        page = urllib.request.urlopen(f"http://127.0.0.1:{cluster.settings.metrics_port + device}/metrics").read()
        lines = page.decode().splitlines()
        counted += sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("aclq_dead_letters_total{"))
    assert counted == expected
    r.close()
