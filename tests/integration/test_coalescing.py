"""Concurrent ``submit``s of one client share messages (group commit): the first is sent alone at
once, those arriving while it is on its way go together in the next round trip; every job keeps
its own id, result and error."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import msgpack
import numpy as np
import pytest
import redis

from producer import AsyncClient, Client, ConfigError, Settings, keys
from producer.transport import decode_entry
from producer.wire import TaskMessage

A = np.arange(6, dtype=np.float32).reshape(2, 3)


def queued_messages(url: str, ns: str) -> list[tuple[str, ...]]:
    """The job ids of each message waiting in the shared queue, oldest first."""
    with redis.Redis.from_url(url) as r:
        entries = r.lrange(keys.shared_queue(ns), 0, -1)
    bodies = (msgpack.unpackb(decode_entry(raw)["body"], raw=False) for raw in reversed(entries))
    return [TaskMessage.from_body(body).job_ids for body in bodies]


@pytest.fixture
def settings(redis_server, namespace, model_repo):
    """No worker consumes this namespace: the messages stay to be looked at."""
    return Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo))


def test_submits_arriving_during_a_send_go_together(settings):
    with Client(settings) as client:
        real_do, gate, first = client._do, threading.Event(), threading.Event()

        def held_first_send(step):
            if not first.is_set():
                first.set()
                assert gate.wait(30)
            return real_do(step)

        client._do = held_first_send
        with ThreadPoolExecutor(32) as pool:
            futures = [pool.submit(client.submit, "add", {"a": A * i, "b": A}) for i in range(32)]
            deadline = time.monotonic() + 30
            while len(client._coalescing.waiting) < 31:  # all but the first wait behind its send
                assert time.monotonic() < deadline
                time.sleep(0.001)
            gate.set()
            jobs = [f.result() for f in futures]
    messages = queued_messages(settings.redis_url, settings.namespace)
    assert sorted(map(len, messages)) == [1, 15, 16]  # alone; then 31 in messages of at most 16
    assert sorted(i for m in messages for i in m) == sorted(job.id for job in jobs)
    assert len({job.id for job in jobs}) == 32


def test_concurrent_async_submits_go_together(settings):
    async def main() -> list:
        async with AsyncClient(settings) as client:
            return await asyncio.gather(*(client.submit("add", {"a": A, "b": A}) for _ in range(20)))

    jobs = asyncio.run(main())
    messages = queued_messages(settings.redis_url, settings.namespace)
    assert sorted(map(len, messages)) == [1, 3, 16]
    assert sorted(i for m in messages for i in m) == sorted(job.id for job in jobs)


def test_a_waiting_caller_cancelled_is_not_sent_and_the_next_sends_in_its_place(settings):
    """Each waiter is woken alone, so the one woken to send next must not take the others' turn
    with it when its caller goes away."""

    async def main() -> tuple:
        async with AsyncClient(settings) as client:
            real_do, gate = client._do, asyncio.Event()

            async def held_first_send(step):
                if not gate.is_set():
                    await gate.wait()
                return await real_do(step)

            client._do = held_first_send
            first = asyncio.create_task(client.submit("add", {"a": A, "b": A}))
            while not client._coalescing.sending:
                await asyncio.sleep(0)
            gone = asyncio.create_task(client.submit("add", {"a": A, "b": A}))
            rest = [asyncio.create_task(client.submit("add", {"a": A, "b": A})) for _ in range(2)]
            while len(client._coalescing.waiting) < 3:
                await asyncio.sleep(0)
            gone.cancel()
            gate.set()
            jobs = await asyncio.wait_for(asyncio.gather(first, *rest), 30)
            return jobs, gone

    jobs, gone = asyncio.run(main())
    assert gone.cancelled()
    messages = queued_messages(settings.redis_url, settings.namespace)
    assert sorted(map(len, messages)) == [1, 2]
    assert sorted(i for m in messages for i in m) == sorted(job.id for job in jobs)


def test_jobs_of_other_models_queues_or_priorities_get_messages_of_their_own(settings):
    async def main() -> None:
        async with AsyncClient(settings) as client:
            await asyncio.gather(
                client.submit("add", {"a": A, "b": A}),  # sent alone, first
                *(client.submit("add", {"a": A, "b": A}) for _ in range(2)),
                *(client.submit("mlp", {"x": np.ones((1, 64), np.float32)}) for _ in range(2)),
                *(client.submit("add", {"a": A, "b": A}, priority=3) for _ in range(2)),
                client.submit("add", {"a": A, "b": A}, device=1),
            )

    asyncio.run(main())
    assert sorted(map(len, queued_messages(settings.redis_url, settings.namespace))) == [1, 2, 2]
    with redis.Redis.from_url(settings.redis_url) as r:
        assert r.llen(keys.device_queue(settings.namespace, 1)) == 1
        assert r.llen(f"{keys.shared_queue(settings.namespace)}\x06\x163") == 1


def test_one_callers_bad_job_fails_that_caller_only(settings):
    async def main() -> list:
        async with AsyncClient(settings) as client:
            return await asyncio.gather(
                client.submit("add", {"a": A, "b": A}),
                client.submit("add", {"a": A}, priority=11),
                client.submit("add", {"a": A, "b": A}),
                return_exceptions=True,
            )

    first, bad, third = asyncio.run(main())
    assert isinstance(bad, ConfigError) and "priority 11" in str(bad)
    assert sorted(i for m in queued_messages(settings.redis_url, settings.namespace) for i in m) == sorted(
        [first.id, third.id]
    )


def test_a_failed_send_fails_every_caller_it_carried(settings):
    with Client(replace(settings, redis_url="redis://127.0.0.1:1/0")) as client:  # nothing listens there
        with ThreadPoolExecutor(8) as pool:
            outcomes = [pool.submit(client.submit, "add", {"a": A, "b": A}) for _ in range(8)]
            errors = [f.exception(30) for f in outcomes]
    assert all(type(e).__name__ == "BrokerConnectionError" for e in errors), errors
    assert not client._coalescing.sending and not client._coalescing.waiting


def test_coalesced_jobs_are_answered_each_with_its_own_result(client):
    """Through the module's workers: 48 jobs from 16 threads, each its own answer."""
    with ThreadPoolExecutor(16) as pool:
        outputs = list(pool.map(lambda i: client.infer("add", {"a": A * i, "b": A}, result_timeout_s=60), range(48)))
    for i, out in enumerate(outputs):
        np.testing.assert_array_equal(out["c"], A * i + A)
