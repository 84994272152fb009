"""The model repository and the LRU model cache, on real models and a real device."""

import json
import os

import numpy as np
import pytest

from acl_core import AclError, Device
from worker.models import MEMORY_PER_FILE_BYTE, ModelCache, ModelConfig, ModelRepository


@pytest.fixture
def repo(tmp_path, model_repo):
    """A repository with add at versions 1 and 3, and mlp."""
    for name, version in (("add", 1), ("add", 3), ("mlp", 1)):
        (tmp_path / name / str(version)).mkdir(parents=True)
        (tmp_path / name / str(version) / "model.onnx").write_bytes(
            (model_repo / name / "1" / "model.onnx").read_bytes()
        )
    return tmp_path


def test_highest_version_is_the_default(repo):
    r = ModelRepository(repo)
    assert r.resolve("add").version == 3
    assert r.resolve("add", 1).version == 1
    assert r.names() == ["add", "mlp"]


@pytest.mark.parametrize(
    "name, version, code, fragment",
    [
        ("missing", None, 100003, "no model 'missing'"),
        ("add", 2, 100003, "has no version 2; it has [1, 3]"),
        ("add", 0, 100000, "must be a positive int"),
        ("../add", None, 100000, "not a valid name"),
        ("a/b", None, 100000, "not a valid name"),
        ("..", None, 100000, "not a valid name"),
        ("", None, 100000, "not a valid name"),
    ],
)
def test_refusals(repo, name, version, code, fragment):
    with pytest.raises(AclError) as info:
        ModelRepository(repo).resolve(name, version)
    assert info.value.code == code and fragment in info.value.message


def test_symlink_out_of_the_repository_is_refused(repo, tmp_path_factory, model_repo):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "model.onnx").write_bytes((model_repo / "add" / "1" / "model.onnx").read_bytes())
    (repo / "evil").mkdir()
    os.symlink(outside, repo / "evil" / "1")
    with pytest.raises(AclError, match="resolves outside the repository") as info:
        ModelRepository(repo).resolve("evil")
    assert info.value.code == 100000


def test_model_config(repo):
    (repo / "mlp" / "config.json").write_text(json.dumps({"warmup": True}))
    assert ModelRepository(repo).resolve("mlp").config == ModelConfig(warmup=True)
    assert ModelRepository(repo).resolve("add").config == ModelConfig()  # no file: defaults
    (repo / "mlp" / "config.json").write_text(json.dumps({"max_batch": 32}))
    with pytest.raises(AclError, match="max_batch") as info:
        ModelRepository(repo).resolve("mlp")
    assert info.value.code == 100006


def test_cache_loads_once_and_evicts_least_recently_used(repo):
    r = ModelRepository(repo)
    add_cost = (repo / "add" / "3" / "model.onnx").stat().st_size * MEMORY_PER_FILE_BYTE
    mlp_cost = (repo / "mlp" / "1" / "model.onnx").stat().st_size * MEMORY_PER_FILE_BYTE
    with Device(0) as device:
        cache = ModelCache(device, r, budget_bytes=mlp_cost + add_cost)  # mlp and one add fit
        first, _ = cache.get("add")
        assert cache.get("add")[0] is first  # a hit: loaded once
        old, _ = cache.get("add", 1)
        cache.get("add")  # add:3 is now the most recent
        cache.get("mlp")  # over budget: add:1, the least recently used, goes
        assert cache.names() == ["add:3", "mlp:1"]
        assert cache.used_bytes == mlp_cost + add_cost
        a = np.ones((2, 3), np.float32)
        with pytest.raises(AclError) as info:
            old.execute({"a": a, "b": a})  # the evicted model was unloaded from the device
        assert info.value.code == 100011
        assert first.execute({"a": a, "b": a})["c"].sum() == 12


def test_a_corrupt_new_version_leaves_the_highest_that_loads_serving(repo):
    """A broken add/4 dropped into the repository: jobs without a version keep running on add:3,
    add:4 is reported broken (the heartbeat shows it), and asking for it explicitly names the
    failure; a fixed file is loaded and served."""
    (repo / "add" / "4").mkdir()
    corrupt = repo / "add" / "4" / "model.onnx"
    corrupt.write_bytes(b"not an onnx model")
    a = np.ones((2, 3), np.float32)
    with Device(0) as device:
        cache = ModelCache(device, ModelRepository(repo), budget_bytes=1 << 30)
        model, ref = cache.get("add")
        assert ref.version == 3 and model.execute({"a": a, "b": a})["c"].sum() == 12
        assert cache.broken() == ["add:4"]
        assert cache.get("add")[1].version == 3  # not tried again while the file is unchanged
        with pytest.raises(AclError) as info:
            cache.get("add", 4)
        assert info.value.code == 100003 and "add:4 failed to load" in info.value.message
        corrupt.write_bytes((repo / "add" / "3" / "model.onnx").read_bytes())
        os.utime(corrupt, (1, 1))  # a new mtime, even on a coarse clock
        cache._resolved.clear()  # past RESOLVE_TTL_S
        assert cache.get("add")[1].version == 4 and cache.broken() == []
