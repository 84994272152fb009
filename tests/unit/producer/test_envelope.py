"""Building a job envelope: every option checked before anything is sent."""

import numpy as np
import pytest

from producer import ConfigError, Settings
from producer.client import _Jobs

A = {"a": np.ones(2, np.float32)}


@pytest.fixture
def jobs():
    j = _Jobs(Settings(redis_url="redis://127.0.0.1:1/0", namespace="t"))
    yield j
    j.close()


def test_defaults_and_fields(jobs):
    job = jobs.envelope("add", A, version=2, options={"stream_sync_timeout_ms": 5}, device=1, host="h", priority=3)
    assert (job.model, job.model_version, job.device, job.host, job.priority) == ("add", 2, 1, "h", 3)
    assert job.reply_key == f"t:job:{job.job_id}:reply" and len(job.job_id) == 32
    assert jobs.envelope("add", A, timeout_s=5).deadline == pytest.approx(job.enqueued_at + 5, abs=1)


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
        jobs.envelope("add", A, **options)
    assert fragment in str(info.value)
