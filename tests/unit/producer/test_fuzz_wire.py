"""10,000 malformed jobs against the decode-and-validate path of the wire: each is either a
well-formed job or a WireError with an ACL code and a message naming the problem."""

import pytest
from hypothesis import HealthCheck, given, settings

from producer.errors import WireError
from producer.wire import JobEnvelope
from tests.fuzz_jobs import malformed_jobs

LIMIT = 1 << 20


@given(malformed_jobs())
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.timeout(300)  # thousands of jobs: minutes on a slow machine
def test_malformed_jobs_are_refused_with_a_code(data):
    try:
        JobEnvelope.decode(data, LIMIT)
    except WireError as exc:
        assert exc.code in (100000, 100026, 300000)
        assert exc.message and str(exc).startswith(f"[{exc.code} {exc.name}]")
