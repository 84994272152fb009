"""Jobs end to end: producer -> Redis -> Celery workers on two devices -> results."""

import threading
import time
import uuid
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import redis

from examples.build_models import DTYPES
from producer import Client, ConfigError, JobFailed, JobNotFound, JobStatus, JobTimeout, ResultTaken, keys
from producer.dispatch import make_celery, queue
from producer.errors import WireError
from producer.wire import INFER_TASK, JobEnvelope, TaskMessage
from tests import waits
from worker.local import LocalCluster


def reference(model_repo, name, feeds):
    return ort.InferenceSession(str(model_repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips(client, dtype):
    x = (np.arange(24) % 5).astype(dtype).reshape(4, 6)
    y = client.infer(f"identity_{dtype}", {"x": x}, result_timeout_s=30)["y"]
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


def test_device_targeted_and_shared_jobs(client):
    a = np.ones((2, 3), np.float32)
    for device in (0, 1):
        jobs = [client.submit("add", {"a": a, "b": a}, device=device) for _ in range(6)]
        assert {job.details(30).device for job in jobs} == {device}
    details = client.submit("add", {"a": a, "b": a}).details(30)
    assert details.device in (0, 1) and details.worker
    assert set(details.timings) == {"queued_ms", "exec_ms", "total_ms"}
    assert details.timings["total_ms"] >= details.timings["exec_ms"] > 0


def test_200_concurrent_jobs_across_two_workers(client, model_repo):
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)} for _ in range(200)]
    jobs = [client.submit("conv", f) for f in feeds]
    devices = set()
    for job, f in zip(jobs, feeds):
        details = job.details(60)
        devices.add(details.device)
        np.testing.assert_allclose(details.outputs["logits"], reference(model_repo, "conv", f)[0], rtol=1e-5, atol=1e-6)
    assert devices == {0, 1}


def test_map_keeps_input_order_with_a_window(either_client, client):
    items = [{"x": np.full((1, 64), float(i), np.float32)} for i in range(40)]
    ys = [out["y"] for out in either_client.map("mlp", items, window=5)]
    direct = [client.infer("mlp", item, result_timeout_s=30)["y"] for item in items]
    for got, want in zip(ys, direct):
        np.testing.assert_array_equal(got, want)


GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


@pytest.mark.parametrize(
    "model, version, inputs, options, code, fragment",
    [
        ("nosuch", None, GOOD, {}, 100003, "no model 'nosuch'"),
        ("add", 7, GOOD, {}, 100003, "has no version 7"),
        ("add", None, {"a": GOOD["a"], "z": GOOD["b"]}, {}, 100017, "missing inputs ['b'], unknown inputs ['z']"),
        ("add", None, {"a": GOOD["a"].astype(np.float64), "b": GOOD["b"]}, {}, 100017, "expects float32, got float64"),
        (
            "add",
            None,
            {"a": np.ones((3, 3), np.float32), "b": GOOD["b"]},
            {},
            100017,
            "expects shape [2, 3], got [3, 3]",
        ),
        ("add", None, GOOD, {"stream_sync_timeout_ms": -7}, 100000, "-1..2147483647"),
        ("add", None, GOOD, {"event_sync_timeout_ms": 2**40}, 100000, "-1..2147483647"),
    ],
)
def test_bad_jobs_answered_with_their_acl_code(either_client, model, version, inputs, options, code, fragment):
    with pytest.raises(JobFailed) as info:
        either_client.infer(model, inputs, version=version, options=options, result_timeout_s=30)
    assert info.value.code == code and fragment in info.value.message
    assert either_client.infer("add", GOOD, result_timeout_s=30)["c"].sum() == 12  # still serving


def _publish_raw(client, job_id: str, payload: bytes) -> None:
    """Put bytes of our choosing where a job's payload goes, then dispatch the job."""
    ns = client.settings.namespace
    client._redis.set(keys.job_input(ns, job_id), payload, ex=60)
    client._redis.set(keys.job_state(ns, job_id), "queued", ex=60)
    with make_celery(client.settings) as app:
        message = TaskMessage((job_id,), "add")
        app.send_task(INFER_TASK, args=message.args(), kwargs=message.kwargs(), queue=queue(keys.shared_queue(ns)))


@pytest.mark.parametrize(
    "payload, code, fragment",
    [
        (b"\xc1\xc1 not msgpack", 100000, "not valid msgpack"),
        (b"\x93\x01\x02\x03", 100000, "must be a msgpack map"),
        (b"\x81\xa7version\x63", 100000, "wire version 99"),
    ],
)
def test_corrupt_payloads_answered(client, payload, code, fragment):
    job_id = f"corrupt-{abs(hash(payload))}"
    _publish_raw(client, job_id, payload)
    with pytest.raises(JobFailed) as info:
        client.job(job_id).result(30)
    assert info.value.code == code and fragment in info.value.message
    assert client.job(job_id).status() is JobStatus.FAILED
    assert client.infer("add", GOOD, result_timeout_s=30)["c"].sum() == 12


@pytest.mark.parametrize("name", ["../add", "add/../../etc", "add:1"])
def test_a_model_name_no_repository_holds_is_refused_at_both_ends(client, name):
    """The client refuses it before sending; a payload that bypassed the client (a foreign or
    older producer) is answered by the worker with the same code and reason."""
    with pytest.raises(WireError, match="is not a valid name") as info:
        client.submit(name, GOOD)
    assert info.value.code == 100000
    ns, job_id = client.settings.namespace, f"named-{abs(hash(name))}"
    payload = JobEnvelope(job_id, name, GOOD, reply_key=keys.job_reply(ns, job_id)).encode(1 << 20)
    _publish_raw(client, job_id, payload)
    with pytest.raises(JobFailed, match="is not a valid name") as failed:
        client.job(job_id).result(30)
    assert failed.value.code == 100000


def test_payload_naming_another_job_is_refused(client):
    job = client._core.envelope("add", GOOD, {"job_id": "victim"})
    _publish_raw(client, "attacker", job.encode(1 << 20))
    with pytest.raises(JobFailed, match="names another job"):
        client.job("attacker").result(30)


LARGE = {"x": np.arange(300 * 64, dtype=np.float32).reshape(300, 64)}  # its answer: 75 KiB


def test_a_large_answer_is_a_string_its_reply_marks_and_its_wait_takes_both(either_client, raw_redis):
    """An answer over NOTICE_ANSWER_MAX is the string ``out`` (a list element costs Redis two
    more copies of it), with an empty element in the reply for the waits that block on it."""
    ns = either_client.settings.namespace
    unread = either_client.submit("identity_float32", LARGE)
    waits.until_keys(raw_redis, [keys.job_reply(ns, unread.id)], present=True)  # answered, not read
    assert raw_redis.lrange(keys.job_reply(ns, unread.id), 0, -1) == [b""]
    assert raw_redis.type(keys.job_out(ns, unread.id)) == b"string"
    assert 0 < raw_redis.ttl(keys.job_out(ns, unread.id)) <= either_client.settings.result_ttl_s
    np.testing.assert_array_equal(either_client.job(unread.id).result(1)["y"], LARGE["x"])  # by a look
    waited = either_client.submit("identity_float32", LARGE)
    np.testing.assert_array_equal(waited.result(30)["y"], LARGE["x"])  # by its wait's BLPOP
    for job in (unread, waited):  # delivered once: neither key left
        assert not raw_redis.exists(keys.job_reply(ns, job.id), keys.job_out(ns, job.id))
        with pytest.raises(ResultTaken):
            either_client.job(job.id).result(1)


def test_a_job_of_a_client_that_names_no_out_key_gets_its_large_answer_in_its_reply(client, raw_redis):
    """A client older than ``large_reply_key`` reads only the reply list: its answer goes there."""
    ns = client.settings.namespace
    job = replace(client._core.envelope("identity_float32", LARGE, {}), large_reply_key=None)
    _publish_raw(client, job.job_id, job.encode(1 << 20))
    waits.until_keys(raw_redis, [keys.job_reply(ns, job.job_id)], present=True)
    assert len(raw_redis.lindex(keys.job_reply(ns, job.job_id), 0)) > 64 * 1024
    assert not raw_redis.exists(keys.job_out(ns, job.job_id))
    np.testing.assert_array_equal(client.job(job.job_id).result(1)["y"], LARGE["x"])


def test_a_job_naming_another_out_key_is_refused(client):
    ns = client.settings.namespace
    job = replace(client._core.envelope("identity_float32", LARGE, {}), large_reply_key=keys.job_state(ns, "other"))
    _publish_raw(client, job.job_id, job.encode(1 << 20))
    with pytest.raises(JobFailed, match="large_reply_key is not its own") as failed:
        client.job(job.job_id).result(30)
    assert failed.value.code == 100000


def test_per_job_timeout_option(client):
    feeds = {"x": np.ones((64, 64), np.float32), "iterations": np.array(10**7)}
    with pytest.raises(JobFailed) as info:
        client.infer("slow", feeds, options={"stream_sync_timeout_ms": 100}, result_timeout_s=30)
    assert info.value.code == 507046 and info.value.name == "ACL_ERROR_RT_STREAM_SYNC_TIMEOUT"


def test_expired_deadline_is_not_executed(client):
    with pytest.raises(JobFailed) as info:
        client.infer("add", GOOD, timeout_s=-1, result_timeout_s=30)
    assert info.value.code == 107020 and "deadline passed" in info.value.message


def test_status_and_reattach(either_client, raw_redis):
    ns = either_client.settings.namespace
    job = either_client.submit("add", GOOD)
    late = either_client.submit("add", GOOD)
    waits.until_keys(raw_redis, [keys.job_reply(ns, late.id)], present=True)  # answered, not read yet
    assert either_client.job(late.id).result(1)["c"].sum() == 12  # a handle made later reads it
    assert job.result(30)["c"].sum() == 12
    assert job.result(1)["c"].sum() == 12  # the handle that read it keeps it
    assert not raw_redis.exists(keys.job_reply(ns, job.id))  # delivered once: out of Redis
    again = either_client.job(job.id)
    assert again.status() is JobStatus.DONE
    with pytest.raises(ResultTaken, match="read already"):
        again.result(1)
    assert either_client.job("never-submitted").status() is JobStatus.NOT_FOUND
    with pytest.raises(JobNotFound):
        either_client.job("never-submitted").result(1)


def test_existing_job_id_is_not_enqueued_twice(either_client, raw_redis):
    ns, other = either_client.settings.namespace, {"a": GOOD["a"] * 3, "b": GOOD["b"]}
    unread = either_client.submit("add", GOOD, job_id=f"fixed-{uuid.uuid4().hex}")
    waits.until_keys(raw_redis, [keys.job_reply(ns, unread.id)], present=True)
    again = either_client.submit("add", other, job_id=unread.id)
    assert again.id == unread.id
    assert again.result(1)["c"].sum() == 12  # the first job's result, not a second run
    first = either_client.submit("add", GOOD, job_id=f"fixed-{uuid.uuid4().hex}")
    first.result(30)
    second = either_client.submit("add", other, job_id=first.id)
    assert second.id == first.id
    with pytest.raises(ResultTaken):  # not run again: its one result was delivered to ``first``
        second.result(1)


def test_result_expiry(cluster):
    """Results live ACLQ_RESULT_TTL_S (a worker setting): a cluster of its own with 1 s."""
    settings = replace(cluster.settings, namespace=cluster.settings.namespace + "-ttl", result_ttl_s=1)
    with LocalCluster(settings, devices=[0]), Client(settings) as short:
        job = short.submit("add", GOOD)  # answered, and never read
        result_key = keys.job_reply(settings.namespace, job.id)
        waits.until_keys(short._redis, [result_key], present=True)
        assert 0 < short._redis.pttl(result_key) <= 1000
        waits.until_keys(short._redis, [result_key], present=False)  # expired by Redis
        with pytest.raises(JobNotFound):
            short.job(job.id).result(1)


@pytest.mark.parametrize("wait_s", [0.2, 6.0])
def test_client_gives_up_waiting(cluster, wait_s):
    """6 s outlasts redis-py's default 5 s socket timeout: the wait must still end as JobTimeout."""
    with Client(replace(cluster.settings, namespace=cluster.settings.namespace + "-nobody")) as lonely:
        job = lonely.submit("add", GOOD)
        with pytest.raises(JobTimeout):
            job.result(wait_s)
        assert job.status() is JobStatus.QUEUED


def test_submit_many_sends_one_message_and_answers_each_job(either_client, cluster, model_repo, raw_redis):
    rng = np.random.default_rng(11)
    feeds = [{"x": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(5)]
    nobody = f"{cluster.settings.namespace}-nobody-{uuid.uuid4().hex[:6]}"
    with Client(replace(cluster.settings, namespace=nobody)) as lonely:
        lonely.submit_many("mlp", feeds)
        assert raw_redis.llen(keys.shared_queue(nobody)) == 1  # five jobs, one Celery message
    jobs = either_client.submit_many("mlp", feeds + [{"x": np.ones((1, 63), np.float32)}])
    for job, f in zip(jobs, feeds):
        np.testing.assert_allclose(job.result(30)["y"], reference(model_repo, "mlp", f)[0], rtol=1e-5)
    with pytest.raises(JobFailed) as info:  # one bad job in the message fails alone
        jobs[-1].result(30)
    assert info.value.code == 100017
    assert len({job.id for job in jobs}) == 6
    with pytest.raises(ConfigError, match="submit_many makes its own job ids"):
        either_client.submit_many("mlp", feeds, job_id="x")
    assert either_client.submit_many("mlp", []) == []
    with pytest.raises(ConfigError, match="window must be at least 1"):
        next(either_client.map("mlp", feeds, window=0))


def forget_when_waited_on(r: redis.Redis, ns: str, job_id: str) -> threading.Thread:
    """Delete a job's records (as a Redis that lost them would) once a caller blocks on its reply."""

    def forget() -> None:
        while not waits.blocked_on_reply(r):
            time.sleep(0.01)  # until the caller blocks on its reply (Redis has no event for it)
        r.delete(keys.job_state(ns, job_id), keys.job_input(ns, job_id))

    thread = threading.Thread(target=forget)
    thread.start()
    return thread


def test_a_job_lost_while_its_caller_waits_is_named(either_client, raw_redis):
    """A caller waiting with no timeout, whose job's records vanish: JobNotFound within about a
    slice (the clients check between 1 s waits), not a wait without end."""
    gone = either_client.submit("add", {"a": np.ones((2, 3), np.float32)}, device=7)  # no worker serves device 7
    started = time.monotonic()
    forgetting = forget_when_waited_on(raw_redis, either_client.settings.namespace, gone.id)
    with pytest.raises(JobNotFound, match="Redis lost it"):
        gone.result()
    forgetting.join()
    assert time.monotonic() - started < 5
