"""Device / Model / ExecConfig: the same semantics, raising AclError."""

import pickle
import threading

import numpy as np
import onnxruntime as ort
import pytest

import acl_core
from acl_core import AclError, Device, ExecConfig, InvalidParamError, StreamSyncTimeout, codes
from acl_core.errors import CallerError, DeviceError, EventSyncTimeout, ResourceError, error_for
from examples.build_models import DTYPES


@pytest.fixture
def dev():
    with Device(0) as device:
        yield device


def reference(path: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize(
    "name, feeds",
    [
        ("add", {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones((2, 3), np.float32)}),
        ("mlp", {"x": np.random.default_rng(0).standard_normal((7, 64)).astype(np.float32)}),
        ("conv", {"x": np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)}),
        ("nonzero", {"x": np.array([[0, 1, 0], [2, 0, 3]], np.float32)}),
    ],
)
def test_execute_matches_onnxruntime(dev, model_path, name, feeds):
    model = dev.load(model_path(name))
    outs = model.execute(feeds)
    want = reference(model_path(name), feeds)
    assert list(outs) == [s.name for s in model.outputs]
    for got, expected in zip(outs.values(), want):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips(dev, model_path, dtype):
    model = dev.load(model_path(f"identity_{dtype}"))
    x = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    y = model.execute({"x": x})["y"]
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


def test_load_from_bytes_and_describe(dev, model_path):
    with open(model_path("mlp"), "rb") as f:
        model = dev.load(f.read())
    assert str(model.inputs[0]) == "x: float32[?, 64]"
    assert model.outputs[0].dims == (-1, 10)
    assert model.provider == "CPUExecutionProvider" == dev.provider


def test_output_names_select_outputs(dev, model_path):
    model = dev.load(model_path("add"))
    a = np.ones((2, 3), np.float32)
    assert list(model.execute({"a": a, "b": a}, output_names=["c"])) == ["c"]
    with pytest.raises(AclError) as info:
        model.execute({"a": a, "b": a}, output_names=["z"])
    assert info.value.code == codes.ACL_ERROR_MODEL_OUTPUT_NOT_MATCH and "'z'" in str(info.value)


@pytest.mark.parametrize(
    "feeds, fragment",
    [
        ({"a": np.ones((2, 3), np.float32)}, "] missing inputs ['b']; model inputs: a: float32[2, 3], b: float32"),
        (
            {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32), "z": np.ones(1)},
            "] unknown inputs ['z']; model inputs:",  # only what is wrong: no "missing inputs []"
        ),
        ({"a": np.ones((2, 3), np.int64), "b": np.ones((2, 3), np.float32)}, "input 'a' expects float32, got int64"),
        (
            {"a": np.ones((3, 2), np.float32), "b": np.ones((2, 3), np.float32)},
            "input 'a' expects shape [2, 3], got [3, 2]",
        ),
        (
            {"a": np.ones((2, 3, 1), np.float32), "b": np.ones((2, 3), np.float32)},
            "expects shape [2, 3], got [2, 3, 1]",
        ),
    ],
)
def test_bad_inputs_name_the_problem(dev, model_path, feeds, fragment):
    model = dev.load(model_path("add"))
    with pytest.raises(AclError) as info:
        model.execute(feeds)
    assert info.value.code == codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH
    assert fragment in str(info.value)
    assert str(info.value).startswith("[100017 ACL_ERROR_MODEL_INPUT_NOT_MATCH]")


def test_dynamic_dim_must_match_static_ones(dev, model_path):
    model = dev.load(model_path("mlp"))
    with pytest.raises(AclError, match=r"expects shape \['\?', 64\], got \[2, 63\]"):
        model.execute({"x": np.ones((2, 63), np.float32)})


def test_inputs_not_a_mapping(dev, model_path):
    with pytest.raises(InvalidParamError, match="must map input names"):
        dev.load(model_path("mlp")).execute([np.ones((2, 64), np.float32)])  # type: ignore[arg-type]


def test_timeout_raises_and_model_stays_usable(dev, model_path):
    model = dev.load(model_path("slow"))
    x = np.full((64, 64), 0.01, np.float32)
    with pytest.raises(StreamSyncTimeout) as info:
        model.execute({"x": x, "iterations": np.array(200_000)}, ExecConfig(stream_sync_timeout_ms=50))
    assert info.value.code == 507046 and "50 ms" in str(info.value)
    with pytest.raises(EventSyncTimeout):
        model.execute({"x": x, "iterations": np.array(200_000)}, ExecConfig(event_sync_timeout_ms=50))
    out = model.execute({"x": x, "iterations": np.array(3)}, ExecConfig(stream_sync_timeout_ms=5000))
    np.testing.assert_allclose(
        out["y"], reference(model_path("slow"), {"x": x, "iterations": np.array(3)})[0], rtol=1e-6
    )


def test_abort_from_another_thread_ends_an_execution_and_the_model_stays_usable(dev, model_path):
    """Model.abort terminates an execution of minutes (slow, 10**7 iterations) as a timeout would:
    500003 in the executing thread, and the next execution is whole."""
    model = dev.load(model_path("slow"))
    x = np.full((64, 64), 0.01, np.float32)
    outcome: list[BaseException] = []

    def execute() -> None:
        try:
            model.execute({"x": x, "iterations": np.array(10**7)})
        except AclError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    while thread.is_alive():  # an abort before the run starts is reset by it: repeat until it ends
        model.abort()
        thread.join(0.05)
    assert len(outcome) == 1 and outcome[0].code == codes.ACL_ERROR_RT_FAILURE and "aborted" in str(outcome[0])
    out = model.execute({"x": x, "iterations": np.array(3)})
    np.testing.assert_allclose(
        out["y"], reference(model_path("slow"), {"x": x, "iterations": np.array(3)})[0], rtol=1e-6
    )


def test_bad_exec_config_is_invalid_param(dev, model_path):
    model = dev.load(model_path("add"))
    a = np.ones((2, 3), np.float32)
    for _ in range(2):  # refused each time: a config that fails is not kept as a handle
        with pytest.raises(InvalidParamError, match="-1..2147483647"):
            model.execute({"a": a, "b": a}, ExecConfig(stream_sync_timeout_ms=-5))
    model.execute({"a": a, "b": a}, ExecConfig(stream_sync_timeout_ms=5000))
    for bad in ([5000], 5000.0, True):  # equal to a valid config's value, or unhashable: refused all the same
        with pytest.raises(InvalidParamError, match="takes an int32 number of ms"):
            model.execute({"a": a, "b": a}, ExecConfig(stream_sync_timeout_ms=bad))  # type: ignore[arg-type]


def test_memory_back_to_baseline_after_runs(dev, model_path):
    model = dev.load(model_path("nonzero"))
    baseline = dev.memory().in_use
    for n in range(1, 200):
        x = np.zeros((n % 7 + 1, 5), np.float32)
        x[0, n % 5] = 1
        assert model.execute({"x": x})["indices"].shape == (2, 1)
    stats = dev.memory()
    assert stats.in_use == baseline and stats.live == 0 and stats.peak > 0


def test_outputs_outlive_the_run(dev, model_path):
    model = dev.load(model_path("add"))
    a = np.ones((2, 3), np.float32)
    first = model.execute({"a": a, "b": a})["c"]
    model.execute({"a": a * 5, "b": a})
    np.testing.assert_array_equal(first, a + a)


def test_unloaded_model_and_errors_of_load(dev, model_path, tmp_path):
    model = dev.load(model_path("add"))
    model.unload()
    with pytest.raises(AclError) as info:
        model.execute({})
    assert info.value.code == codes.ACL_ERROR_INVALID_MODEL_ID
    with pytest.raises(AclError) as info:
        dev.load(tmp_path / "nope.onnx")
    assert info.value.code == codes.ACL_ERROR_INVALID_FILE
    with pytest.raises(AclError) as info:
        dev.load(b"not a model")
    assert info.value.code == codes.ACL_ERROR_PARSE_MODEL and isinstance(info.value, CallerError)


def test_invalid_device():
    with pytest.raises(AclError) as info:
        Device(99)
    assert info.value.code == codes.ACL_ERROR_RT_INVALID_DEVICEID


def test_error_tree_and_pickling():
    assert isinstance(error_for(100000, "m"), InvalidParamError)
    assert isinstance(error_for(100017, "m"), CallerError)
    assert isinstance(error_for(207001, "m"), ResourceError)
    assert isinstance(error_for(507046, "m"), StreamSyncTimeout)
    assert isinstance(error_for(507011, "m"), DeviceError)
    assert isinstance(error_for(999, "m"), DeviceError)  # unknown codes are internal
    err = pickle.loads(pickle.dumps(StreamSyncTimeout("late")))
    assert type(err) is StreamSyncTimeout and (err.code, err.name, err.message) == (
        507046,
        "ACL_ERROR_RT_STREAM_SYNC_TIMEOUT",
        "late",
    )
    assert str(error_for(123, "x")) == "[123 ACL_ERROR_UNKNOWN(123)] x"


def test_exported_names():
    public = {n for n in dir(acl_core) if not n.startswith("_")} - {
        "api",
        "backends",
        "config",
        "constants",
        "dataset",
        "discovery",
        "dtypes",
        "errors",
        "exec_config",
        "memory",
        "model",
        "runtime",
    }
    assert set(acl_core.__all__) == public
    for module in (acl_core.acl, acl_core.acl.rt, acl_core.acl.mdl, acl_core.acl.util):
        assert all(callable(getattr(module, n)) for n in module.__all__ if n not in ("rt", "mdl", "util"))


def test_codes_table_matches_acl():
    assert codes.NAMES[0] == "ACL_SUCCESS"
    assert codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT == 507046 and codes.ACL_ERROR_MODEL_NOT_DYNAMIC == 100019
    assert len(codes.NAMES) == len(set(codes.NAMES.values()))  # no two names share a value


class SizedRuns:
    """acl_core.model.Runs: runs of ``size`` rows, each ``next`` taking ``wait_s``."""

    def __init__(self, size: int, wait_s: float = 0.0) -> None:
        self.size, self.wait_s = size, wait_s
        self.recorded: list[int] = []
        self.refused: list[int | None] = []

    def next(self, done: int, rows: int) -> int:
        threading.Event().wait(self.wait_s)
        return self.size

    def record(self, rows: int, seconds: float) -> None:
        assert seconds > 0
        self.recorded.append(rows)

    def refuse(self, rows: int | None) -> None:
        self.refused.append(rows)


def test_an_execution_in_runs_gives_what_one_at_once_gives(dev, model_path):
    model = dev.load(model_path("mlp"))
    feeds = {"x": np.random.default_rng(2).standard_normal((100, 64)).astype(np.float32)}
    runs = SizedRuns(32)
    got = model.execute(feeds, ExecConfig(stream_sync_timeout_ms=60_000), runs=runs)["y"]
    np.testing.assert_allclose(got, reference(model_path("mlp"), feeds)[0], rtol=1e-5, atol=1e-6)
    assert runs.recorded == [32, 32, 32, 4] and runs.refused == []
    assert dev.memory().live == 0


def test_runs_whose_outputs_lack_their_rows_give_way_to_one_execution_at_once(dev, model_path):
    """NonZero's output is (rank, nonzeros): not a run's rows, so joining runs would be wrong."""
    model = dev.load(model_path("nonzero"))
    x = (np.random.default_rng(3).random((40, 3)) > 0.5).astype(np.float32)
    runs = SizedRuns(16)
    np.testing.assert_array_equal(model.execute({"x": x}, runs=runs)["indices"], np.nonzero(x))
    assert runs.recorded == [16, 40] and runs.refused == [None]


def test_a_timeout_covers_every_run_of_an_execution(dev, model_path):
    model = dev.load(model_path("mlp"))
    feeds = {"x": np.zeros((100, 64), np.float32)}
    runs = SizedRuns(10, wait_s=0.03)  # each run waits 30 ms first: the second finds 50 ms gone
    with pytest.raises(StreamSyncTimeout, match="outlived its 50 ms timeout after 10 of its 100 rows"):
        model.execute(feeds, ExecConfig(stream_sync_timeout_ms=50), runs=runs)
    assert runs.recorded == [10]
    assert model.execute(feeds)["y"].shape == (100, 10)  # the model stays usable


def test_an_abort_between_two_runs_stops_the_execution_before_the_next(dev, model_path):
    model = dev.load(model_path("mlp"))
    feeds = {"x": np.zeros((100, 64), np.float32)}

    class AbortedAfterTwo(SizedRuns):
        def next(self, done: int, rows: int) -> int:
            if done == 20:
                model.abort()  # as another thread may, between two runs
            return super().next(done, rows)

    runs = AbortedAfterTwo(10)
    with pytest.raises(DeviceError, match=r"aborted \(Model.abort\) after 20 of its 100 rows") as info:
        model.execute(feeds, runs=runs)
    assert info.value.code == codes.ACL_ERROR_RT_FAILURE and runs.recorded == [10, 10]
    assert model.execute(feeds, runs=SizedRuns(50))["y"].shape == (100, 10)  # the next one is not aborted


def test_a_run_of_no_rows_is_refused(dev, model_path):
    model = dev.load(model_path("mlp"))
    with pytest.raises(InvalidParamError, match="Runs.next gave a run of 0 rows") as info:
        model.execute({"x": np.zeros((10, 64), np.float32)}, runs=SizedRuns(0))
    assert info.value.code == codes.ACL_ERROR_INVALID_PARAM
