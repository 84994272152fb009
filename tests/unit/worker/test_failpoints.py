"""Fail points: only the named ones exist, and an unset one never stops anything."""

import pytest

from producer.errors import ConfigError
from worker.failpoints import FailPoints


def test_an_unknown_fail_point_is_refused_by_name():
    with pytest.raises(ConfigError, match="ACLQ_FAILPOINT='nope': known fail points are hold, execute, answer"):
        FailPoints(None, "ns", armed="nope")  # type: ignore[arg-type]


def test_a_fail_point_not_armed_passes_without_touching_redis():
    points = FailPoints(None, "ns", armed="")  # type: ignore[arg-type]  # no client: any use would raise
    for name in ("hold", "execute", "answer"):
        points.reached(name)
