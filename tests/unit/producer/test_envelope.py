"""Building a job envelope: every option checked before anything is sent."""

import numpy as np
import pytest

from producer import BrokerConnectionError, ConfigError, JobNotFound, Settings, keys
from producer.client import _Core, _Publish, _Redis

A = {"a": np.ones(2, np.float32)}


@pytest.fixture
def jobs():
    j = _Core(Settings(redis_url="redis://127.0.0.1:1/0", namespace="t"))
    yield j
    j.close()


def test_defaults_and_fields(jobs):
    options = {"version": 2, "options": {"stream_sync_timeout_ms": 5}, "device": 1, "host": "h", "priority": 3}
    job = jobs.envelope("add", A, options)
    assert (job.model, job.model_version, job.device, job.host, job.priority) == ("add", 2, 1, "h", 3)
    assert job.reply_key == f"t:job:{job.job_id}:reply" and len(job.job_id) == 32
    assert jobs.envelope("add", A, {"timeout_s": 5}).deadline == pytest.approx(job.enqueued_at + 5, abs=1)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"priority": 10}, "priority 10 must be 0 (first) .. 9 (last)"),
        ({"host": "h"}, "host 'h' needs a device"),
        ({"options": {"work_addr": 1}}, "unknown exec options ['work_addr']"),
        ({"devce": 1}, "unknown submit options ['devce']"),
    ],
)
def test_bad_options_are_named(jobs, options, fragment):
    with pytest.raises(ConfigError) as info:
        jobs.envelope("add", A, options)
    assert fragment in str(info.value)


def test_an_enqueue_whose_message_cannot_be_published_takes_its_keys_back(jobs):
    """The core's enqueue, driven by hand (no Redis): the MULTI, the message, and on a publish
    failure the rollback of exactly the keys it set, then the failure to the caller."""
    steps = jobs.enqueue("add", [A, A], {})
    multi = next(steps)
    assert isinstance(multi, _Redis) and multi.transaction and [c[0] for c in multi.commands] == ["set"] * 4
    ids = [multi.commands[0][1][0].split(":")[2], multi.commands[2][1][0].split(":")[2]]
    publish = steps.send([True, True, True, False])  # the second id's state existed: a finished job
    assert isinstance(publish, _Redis)  # first its stray payload goes
    assert publish.commands == (("delete", (keys.job_input("t", ids[1]),), {}),)
    publish = steps.send([1])
    assert isinstance(publish, _Publish) and [j.job_id for j in publish.jobs] == ids[:1]
    rollback = steps.throw(BrokerConnectionError("Redis at x: down"))
    assert rollback.commands == (("delete", (keys.job_input("t", ids[0]), keys.job_state("t", ids[0])), {}),)
    with pytest.raises(BrokerConnectionError, match="down"):
        steps.send([2])


def test_a_wait_ends_in_job_not_found_when_the_job_vanished(jobs):
    steps = jobs.result("j1", None, known=True)
    wait = next(steps)
    assert wait.commands[0][0] == "blmove" and wait.commands[0][1][2] == 1.0  # one slice, then a look
    look = steps.send([None])
    assert [c[0] for c in look.commands] == ["lindex", "get"]
    with pytest.raises(JobNotFound, match="Redis lost it"):
        steps.send([None, None])


@pytest.mark.parametrize("window", [0, -1])
def test_a_map_window_below_one_is_refused(jobs, window):
    with pytest.raises(ConfigError, match="window must be at least 1"):
        jobs.map_room(window, 0)
