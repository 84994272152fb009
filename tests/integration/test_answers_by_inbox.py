"""Jobs a client submits while others of its jobs are waited for are answered through its inbox:
the workers push each answered job's id there (with the answer, where small), and one reader
wakes the waits, so no wait holds a blocking connection or makes a round trip of its own. A
caller waiting alone reads its own reply (docs/wire-format.md, "How a job travels", step 4)."""

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import redis

from producer import AsyncClient, Client, JobCancelled, JobFailed, JobNotFound, JobStatus, keys
from producer.codes import ACL_ERROR_INVALID_PARAM
from producer.wire import NOTICE_ANSWER_MAX
from tests import waits

A = np.arange(6, dtype=np.float32).reshape(2, 3)
UNSERVED = {"device": 7}  # no worker serves device 7: such a job waits until cancelled


def blocking_reads(r: redis.Redis) -> int:
    """BLPOPs the server has run: a wait that reads its job's reply itself makes one or more."""
    return int(r.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0))


@contextlib.contextmanager
def another_wait(client: Any, raw_redis: redis.Redis) -> Iterator[None]:
    """A wait of the client in progress throughout, blocked in Redis (its own ``BLPOP``, in one
    slice of WAIT_SLICE_S: set it long) for a job nobody runs, cancelled after."""
    with waits.another_wait(client, client.submit("add", {"a": A, "b": A}, **UNSERVED)):
        while not waits.blocked_on_reply(raw_redis):
            time.sleep(0.001)
        yield


@pytest.mark.parametrize("size", [16, NOTICE_ANSWER_MAX + 1], ids=["answer in the notice", "id only"])
def test_jobs_submitted_while_others_are_waited_for_are_answered_through_the_inbox(
    either_client, raw_redis, size, monkeypatch
):
    monkeypatch.setattr("producer.client.WAIT_SLICE_S", 60.0)
    data = [np.full((1, size), i, np.uint8) for i in range(12)]
    with another_wait(either_client, raw_redis):
        before = blocking_reads(raw_redis)
        jobs = [either_client.submit("identity_uint8", {"x": x}) for x in data]
        for x, job in zip(data, jobs, strict=True):
            np.testing.assert_array_equal(job.result(60)["y"], x)
        assert blocking_reads(raw_redis) == before
        # delivered once: each reply taken out of Redis (by the reader's UNLINK, or its LPOP and GETDEL)
        ns = either_client.settings.namespace
        taken = [key for job in jobs for key in (keys.job_reply(ns, job.id), keys.job_out(ns, job.id))]
        waits.until_keys(raw_redis, taken, present=False)
        assert all(JobStatus.decode(raw_redis.get(keys.job_state(ns, job.id))) is JobStatus.DONE for job in jobs)


def test_a_caller_waiting_alone_reads_its_own_reply(either_client, raw_redis):
    for i in range(3):
        before = blocking_reads(raw_redis)
        out = either_client.infer("add", {"a": A * i, "b": A}, result_timeout_s=60)
        np.testing.assert_array_equal(out["c"], A * i + A)
        assert blocking_reads(raw_redis) > before
    assert raw_redis.llen(waits.core(either_client).inbox.key) == 0  # no notice pushed for them
    assert waits.core(either_client).inbox.reader is None  # and no reader runs


def test_a_job_naming_another_key_for_its_notice_is_refused_and_nothing_is_pushed(client, raw_redis):
    with another_wait(client, raw_redis):
        elsewhere = f"{client.settings.namespace}:job:x:state"
        client._core.inbox.key = elsewhere  # as a hand-made job would name it
        job = client.submit("add", {"a": A, "b": A})
        with pytest.raises(JobFailed) as failed:
            job.result(60)  # no notice: the wait finds the answer when it looks itself
    assert failed.value.code == ACL_ERROR_INVALID_PARAM and "notify_key" in failed.value.message
    assert not raw_redis.exists(elsewhere)
    client._core.inbox_for(-1)  # the next wait makes a fresh inbox, as after a fork
    np.testing.assert_array_equal(client.infer("add", {"a": A, "b": A}, result_timeout_s=60)["c"], A + A)


def test_a_cancel_wakes_the_clients_own_wait_at_once(either_client, raw_redis, monkeypatch):
    """Without the wake, the wait would learn of the cancel only when it next looks itself."""
    monkeypatch.setattr("producer.client.WAIT_SLICE_S", 60.0)
    with another_wait(either_client, raw_redis):
        job = either_client.submit("add", {"a": A, "b": A}, **UNSERVED)
        with waits.waited_for(either_client, job) as waiting:
            started = time.monotonic()
            assert job.cancel()
            with pytest.raises(JobCancelled):
                waiting.result(30)
    assert time.monotonic() - started < 10  # woken, not at the end of its 30 s wait


def test_a_job_lost_while_waited_for_through_the_inbox_is_named(either_client, raw_redis):
    """Its records vanish (as a Redis that lost them): JobNotFound at the wait's next look, about
    a slice on, as for a wait by its own BLPOP (test_queue.py)."""
    ns = either_client.settings.namespace
    with another_wait(either_client, raw_redis):
        gone = either_client.submit("add", {"a": A, "b": A}, **UNSERVED)
        with waits.waited_for(either_client, gone) as waiting:
            started = time.monotonic()
            raw_redis.delete(keys.job_state(ns, gone.id), keys.job_input(ns, gone.id))
            with pytest.raises(JobNotFound, match="Redis lost it"):
                waiting.result(30)
    assert time.monotonic() - started < 5


def test_a_reader_that_stopped_is_started_again_by_the_next_wait(client, raw_redis):
    with another_wait(client, raw_redis):
        client.infer("add", {"a": A, "b": A}, result_timeout_s=60)  # its wait, the inbox's first, starts it
        reader = client._core.inbox.reader
        assert reader is not None and reader.is_alive()
        client._core.inbox_for(-1)  # the reader's inbox is no longer the client's: it stops
        reader.join(30)
        assert not reader.is_alive()
        client._core.inbox_for(os.getpid())  # a fresh inbox, as after a fork
        np.testing.assert_array_equal(client.infer("add", {"a": A, "b": A}, result_timeout_s=60)["c"], A + A)
        assert client._core.inbox.reader is not reader and client._core.inbox.reader.is_alive()


def test_a_server_that_refuses_the_inbox_read_leaves_each_wait_reading_its_own(cluster, raw_redis, caplog):
    """As Redis before 7.0 (no BLMPOP) or an ACL would: a user denied the command."""
    user = "aclq-no-blmpop"
    raw_redis.acl_setuser(user, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-blmpop"])
    url = (cluster.settings.redis_url or "").replace("redis://", f"redis://{user}@")
    with Client(replace(cluster.settings, redis_url=url)) as client, caplog.at_level(logging.WARNING):
        with another_wait(client, raw_redis):
            first = client.submit("add", {"a": A, "b": A})  # names the inbox: its wait starts the reader
            assert first._notified
            np.testing.assert_array_equal(first.result(60)["c"], A + A)
            deadline = time.monotonic() + 30
            while not client._core.inbox.refused:  # the reader is refused
                assert time.monotonic() < deadline
                time.sleep(0.001)
            jobs = [client.submit("add", {"a": A * i, "b": A}) for i in range(4)]
            assert not any(job._notified for job in jobs)
            for i, job in enumerate(jobs):
                np.testing.assert_array_equal(job.result(60)["c"], A * i + A)
    assert "refused BLMPOP" in caplog.text


def test_a_client_dropped_unclosed_lets_its_reader_end(cluster, raw_redis):
    client = Client(cluster.settings)
    with another_wait(client, raw_redis):
        client.infer("add", {"a": A, "b": A}, result_timeout_s=60)  # through the inbox: its reader starts
    reader = client._core.inbox.reader
    assert reader is not None and reader.is_alive()
    del client
    gc.collect()
    reader.join(30)
    assert not reader.is_alive()


def test_waits_from_many_threads_each_get_their_own_answer(client, raw_redis):
    barrier = threading.Barrier(16)

    def one(i: int) -> np.ndarray:
        barrier.wait(30)
        return client.infer("add", {"a": A * i, "b": A}, result_timeout_s=60)["c"]

    with another_wait(client, raw_redis), ThreadPoolExecutor(16) as pool:
        outputs = list(pool.map(one, range(16)))
    for i, out in enumerate(outputs):
        np.testing.assert_array_equal(out, A * i + A)


def test_more_waits_gathered_on_one_event_loop_than_a_pool_holds_each_get_their_answer(cluster):
    """Jobs submitted with no wait in progress are each waited for by their own BLPOP, which
    holds a connection while it blocks: gathering more of them than redis-py's asyncio pool
    allows by default (100) must not fail with "Too many connections"."""
    count = 150

    async def main() -> list[np.ndarray]:
        async with AsyncClient(cluster.settings) as client:
            jobs = [await client.submit("add", {"a": A * i, "b": A}) for i in range(count)]
            assert not any(job._notified for job in jobs)  # none names the inbox: each its own BLPOP
            return [out["c"] for out in await asyncio.gather(*(job.result(60) for job in jobs))]

    for i, out in enumerate(asyncio.run(main())):
        np.testing.assert_array_equal(out, A * i + A)


# The connections a loop left open when it ended are closed when collected, as asyncio's own
# are, with a ResourceWarning: expected here (the client is never closed between loops).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_async_client_serves_one_event_loop_after_another(cluster):
    """A client made once and used under asyncio.run again and again (a script's steps, a test
    suite's loop per test), not closed in between: each loop gets connections of its own (a
    loop's cannot serve another: this failed with "attached to a different loop"), and its own
    inbox reader for the waits beside others."""
    client = AsyncClient(cluster.settings)

    async def step(client: AsyncClient, i: int) -> list[np.ndarray]:
        alone = await client.infer("add", {"a": A * i, "b": A}, result_timeout_s=60)
        together = await asyncio.gather(
            *(client.infer("add", {"a": A * j, "b": A}, result_timeout_s=60) for j in range(8))
        )
        return [alone["c"], *(out["c"] for out in together)]

    for i in range(3):
        outs = asyncio.run(step(client, i))
        np.testing.assert_array_equal(outs[0], A * i + A)
        for j, out in enumerate(outs[1:]):
            np.testing.assert_array_equal(out, A * j + A)
    del client
    gc.collect()  # here, not in another test
