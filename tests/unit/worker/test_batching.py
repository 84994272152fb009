"""Dynamic batching's pieces: which jobs batch, how they pack, join and split, when a worker's
buffer runs, and the model config that asks for it."""

import json
from pathlib import Path

import numpy as np
import pytest

from acl_core import AclError, Device, ExecConfig
from worker.batching import Packer, batch_key, join, split
from worker.gather import Gathering
from worker.models import ModelConfig, ModelRepository


@pytest.fixture
def models(model_path):
    with Device(0) as device:
        yield {name: device.load(model_path(name)) for name in ("mlp", "conv", "add", "nonzero")}


def x(rows, width=64, dtype=np.float32):
    return {"x": np.zeros((rows, width), dtype)}


def test_jobs_that_agree_on_all_but_the_rows_share_a_key(models):
    mlp = models["mlp"]
    key = batch_key(mlp, 8, x(1), ExecConfig(), None)
    assert key is not None
    assert batch_key(mlp, 8, x(5), ExecConfig(), None) == key
    assert batch_key(mlp, 8, x(1), ExecConfig(stream_sync_timeout_ms=5), None) != key  # other options
    assert batch_key(mlp, 8, x(1), ExecConfig(), ["y"]) != key  # other outputs asked for


@pytest.mark.parametrize(
    ("name", "max_batch_size", "feeds", "why"),
    [
        ("mlp", 1, x(1), "batching off"),
        ("mlp", 0, x(1), "batching off"),
        ("mlp", 8, x(9), "more rows than a batch"),
        ("mlp", 8, x(0), "no rows"),
        ("mlp", 8, x(1, 63), "trailing dims the model does not take: fails alone"),
        ("mlp", 8, x(1, dtype=np.float64), "a dtype the model does not take: fails alone"),
        ("mlp", 8, {"x": np.zeros(64, np.float32)}, "no first axis"),
        ("mlp", 8, {"y": np.zeros((1, 64), np.float32)}, "an input the model does not have"),
        ("add", 8, {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.float32)}, "static dims"),
        ("nonzero", 8, {"x": np.zeros((2, 3), np.float32)}, "an output whose first axis is not the rows"),
    ],
)
def test_jobs_that_cannot_batch_run_alone(models, name, max_batch_size, feeds, why):
    assert batch_key(models[name], max_batch_size, feeds, ExecConfig(), None) is None, why


def test_an_unhashable_option_runs_alone(models):
    assert batch_key(models["mlp"], 8, x(1), ExecConfig(stream_sync_timeout_ms=[1]), None) is None  # type: ignore[arg-type]


def test_packer_fills_groups_in_order_up_to_the_row_limit():
    packer: Packer[str] = Packer()
    for item, key, rows in [("a", "k", 3), ("b", "k", 2), ("alone", None, 1), ("c", "j", 4), ("d", "k", 2)]:
        packer.add(item, key, rows, 6)
    packer.add("e", "k", 1, 6)  # fits beside d
    assert packer.groups() == [["a", "b"], ["alone"], ["c"], ["d", "e"]]


def test_join_then_split_gives_each_job_its_rows_as_views():
    feeds = [{"x": np.full((n, 2), n, np.float32)} for n in (1, 3, 2)]
    joined = join(feeds)
    assert joined["x"].shape == (6, 2)
    parts = split({"y": joined["x"] * 10}, [1, 3, 2])
    for part, feed in zip(parts, feeds, strict=True):
        np.testing.assert_array_equal(part["y"], feed["x"] * 10)
        assert part["y"].base is not None  # a view of the batch's output, not a copy


def test_split_refuses_outputs_that_are_not_the_rows_fed_in():
    with pytest.raises(AclError) as info:
        split({"y": np.zeros((1, 4))}, [2, 3])
    assert info.value.code == 100000 and "1 rows for 5 batched rows" in str(info.value)


def test_a_model_that_does_not_batch_runs_at_once():
    gathering = Gathering(lambda name: ModelConfig())
    assert gathering.arrived("add", 1)


def test_an_unknown_model_runs_at_once():
    def config(name):
        raise AclError(100003, f"no model {name!r}")

    assert Gathering(config).arrived("missing", 1)


def test_a_batching_model_waits_until_its_batch_is_full():
    gathering = Gathering(lambda name: ModelConfig(max_batch_size=4, max_queue_delay_ms=1000))
    assert not gathering.arrived("mlp", 1)
    assert not gathering.arrived("mlp", 2)
    assert not gathering.due()  # 1 s has not passed
    assert gathering.arrived("mlp", 1)  # 4 rows: a full batch
    gathering.ran()
    assert gathering.due()  # nothing waits


def test_a_batching_model_runs_once_its_first_job_waited_its_delay():
    """The first job's delay counts, not the last one's: later arrivals do not move the deadline."""
    now = [100.0]
    gathering = Gathering(lambda name: ModelConfig(max_batch_size=64, max_queue_delay_ms=10), clock=lambda: now[0])
    assert not gathering.arrived("mlp", 1)  # due at 100.010
    now[0] = 100.008
    assert not gathering.arrived("mlp", 1)  # would be due at 100.018 if it moved the deadline
    now[0] = 100.0099
    assert not gathering.due()
    now[0] = 100.010
    assert gathering.due()


def test_a_message_whose_rows_fill_a_batch_runs_at_once():
    """Rows count, not messages: a job of more rows than a batch holds runs alone anyway, and
    holding it for the delay would only keep the worker from its next message."""
    gathering = Gathering(lambda name: ModelConfig(max_batch_size=64, max_queue_delay_ms=1000))
    assert gathering.arrived("conv", 1365)
    gathering.ran()
    assert not gathering.arrived("conv", 40)
    assert gathering.arrived("conv", 24)  # 64 rows


def test_a_zero_delay_batches_the_messages_waiting_and_waits_for_none():
    """No delay (the default): a claim's messages are held until its last, which runs them when
    the claim left the queues empty; one held while messages are left is due at once (the next
    tick runs it, should the next claim not fill the batch)."""
    gathering = Gathering(lambda name: ModelConfig(max_batch_size=8))
    assert not gathering.arrived("mlp", 1)
    assert not gathering.arrived("mlp", 2)
    assert gathering.arrived("mlp", 1, last=True)
    gathering.ran()
    assert not gathering.arrived("mlp", 1)
    assert gathering.due()


def test_a_delay_holds_messages_though_none_other_waits():
    """A delay asked for is a wait for company that has not arrived yet (Triton's
    max_queue_delay_microseconds): the last message waiting is held for it too."""
    now = [100.0]
    gathering = Gathering(lambda name: ModelConfig(max_batch_size=8, max_queue_delay_ms=10), clock=lambda: now[0])
    assert not gathering.arrived("mlp", 1, last=True)
    now[0] = 100.010
    assert gathering.arrived("mlp", 1, last=True)  # its first job has waited its delay


def test_the_last_waiting_message_runs_what_a_zero_delay_model_holds():
    """Held jobs of a model without a delay run once nothing else waits, whatever model's
    message came last: holding them longer would wait for no one."""
    configs = {"mlp": ModelConfig(max_batch_size=8), "conv": ModelConfig(max_batch_size=8, max_queue_delay_ms=1000)}
    gathering = Gathering(configs.__getitem__)
    assert not gathering.arrived("mlp", 1)
    assert gathering.arrived("conv", 1, last=True)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"max_batch_size": -1}, "max_batch_size"),
        ({"max_batch_size": 2.5}, "max_batch_size"),
        ({"max_queue_delay_ms": -1}, "max_queue_delay_ms"),
        ({"max_queue_delay_ms": 5000}, "max_queue_delay_ms"),
        ({"warmup": "yes"}, "warmup"),
    ],
)
def test_bad_batching_config_is_a_parse_error(tmp_path, model_path, config, match):
    (tmp_path / "mlp" / "1").mkdir(parents=True)
    (tmp_path / "mlp" / "1" / "model.onnx").write_bytes(Path(model_path("mlp")).read_bytes())
    (tmp_path / "mlp" / "config.json").write_text(json.dumps(config))
    with pytest.raises(AclError, match=match) as info:
        ModelRepository(tmp_path).resolve("mlp")
    assert info.value.code == 100006  # ACL_ERROR_PARSE_FILE
    assert ModelRepository(tmp_path).largest_batch() == 1  # a broken config does not stop a worker


def test_largest_batch_sets_how_many_messages_a_worker_holds(model_repo):
    assert ModelRepository(model_repo).largest_batch() == 64  # the example mlp and conv
