"""The worker's background threads live through what the job thread does to shared state."""

import itertools
import sys
import threading
import uuid
from dataclasses import replace

import redis

from acl_core import Device
from producer.wire import WorkerBeat
from worker.health import Heartbeat
from worker.models import ModelCache, ModelRepository

BEAT = WorkerBeat(
    name="h/device0/pid1",
    host="h",
    device=0,
    runtime_device=0,
    provider="CPUExecutionProvider",
    pid=1,
    queues=("q",),
    ready=True,
    started_at=0.0,
    done=0,
    failed=0,
    done_recent=0,
    failed_recent=0,
    recent_s=60.0,
    last_job_at=0.0,
    models=(),
    broken=(),
    memory_in_use=0,
    memory_total=0,
)


def test_the_heartbeat_survives_a_snapshot_that_fails(redis_server, caplog):
    client = redis.Redis.from_url(redis_server.url)
    key = f"hb:{uuid.uuid4().hex}"
    calls = itertools.count()

    def snapshot() -> WorkerBeat:
        n = next(calls)
        if n == 1:
            raise RuntimeError("a bug in the snapshot")
        return replace(BEAT, done=n)

    client.config_set("notify-keyspace-events", "Kh")
    with client.pubsub() as sub:
        sub.subscribe(f"__keyspace@0__:{key}")
        heartbeat = Heartbeat(client, key, snapshot)
        heartbeat.start()  # beat 0
        heartbeat.nudge()  # beat 1: fails
        while int(client.hget(key, "done") or 0) < 2:
            heartbeat.nudge()  # beats go on after the failure
            sub.get_message(timeout=1)
        heartbeat.close()
    assert "heartbeat snapshot failed" in caplog.text
    client.close()


def test_the_loaded_model_names_can_be_read_while_the_cache_changes(model_repo):
    """The heartbeat reads names() from its thread while the job thread loads and evicts."""
    errors: list[BaseException] = []
    stop = threading.Event()
    with Device(0) as device:
        cache = ModelCache(device, ModelRepository(model_repo), budget_bytes=1)  # every load evicts the last

        def read() -> None:
            try:
                while not stop.is_set():
                    assert len(cache.names()) <= 1
            except BaseException as exc:  # noqa: B036 - reported below
                errors.append(exc)

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
        reader = threading.Thread(target=read)
        reader.start()
        try:
            for name in itertools.islice(itertools.cycle(["add", "mlp", "conv"]), 600):
                cache.get(name)
        finally:
            stop.set()
            reader.join()
            sys.setswitchinterval(interval)
    assert not errors, errors
