"""ONNX Runtime's optimized graphs kept between loads (acl_core/backends/graph_cache.py)."""

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from acl_core.backends.onnxruntime import OnnxRuntimeBackend
from acl_core.config import RuntimeConfig


def backend(cache: Path | None) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(RuntimeConfig(provider="cpu", device_count=1, graph_cache_dir=cache and str(cache)))


def answer(model, rng_seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(rng_seed)
    feeds = {s.name: rng.standard_normal([max(d, 2) for d in s.dims]).astype(np.float32) for s in model.inputs}
    return model.run(feeds, None)  # type: ignore[no-any-return]


@pytest.fixture
def conv(model_path, tmp_path) -> Path:
    """A copy of the example conv: a file of the test's own, to touch."""
    path = tmp_path / "conv.onnx"
    path.write_bytes(Path(model_path("conv")).read_bytes())
    return path


def test_the_second_load_reads_the_graph_the_first_wrote_and_answers_bit_for_bit_the_same(conv, tmp_path):
    cache = tmp_path / "graphs"
    first = backend(cache).load(conv, 0)
    (cached,) = cache.iterdir()  # one graph under its key, no temporary file left
    written = cached.stat().st_ino
    second = backend(cache).load(conv, 0)
    assert cached.stat().st_ino == written  # a miss writes a new file; this load only read
    uncached = backend(None).load(conv.read_bytes(), 0)
    for a, b, c in zip(answer(first), answer(second), answer(uncached), strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_a_changed_file_or_other_bytes_get_a_graph_of_their_own(conv, tmp_path):
    cache = tmp_path / "graphs"
    backend(cache).load(conv, 0)
    os.utime(conv, ns=(1, 1))  # the file changed (as its mtime says): its old graph is not used
    backend(cache).load(conv, 0)
    backend(cache).load(conv.read_bytes(), 0)  # bytes are named by their digest
    backend(cache).load(conv.read_bytes(), 0)
    assert len(list(cache.iterdir())) == 3


def test_a_damaged_graph_is_replaced_and_the_model_still_loads(conv, tmp_path, caplog):
    cache = tmp_path / "graphs"
    backend(cache).load(conv, 0)
    (cached,) = cache.iterdir()
    cached.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, logger="acl_core.backends.graph_cache"):
        model = backend(cache).load(conv, 0)
    assert "does not load" in caplog.text
    np.testing.assert_array_equal(answer(model)[0], answer(backend(None).load(conv, 0))[0])
    assert cached.stat().st_size > len(b"truncated")  # optimized again, and written back


def test_a_cache_that_cannot_be_created_leaves_models_loading_uncached(conv, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="acl_core.backends.graph_cache"):
        model = backend(blocker / "graphs").load(conv, 0)
    assert "cannot be created" in caplog.text
    assert answer(model)


def test_graphs_unused_for_30_days_go_when_another_is_added(conv, tmp_path):
    cache = tmp_path / "graphs"
    backend(cache).load(conv, 0)
    (used,) = cache.iterdir()
    stale = cache / "0123456789abcdef0123456789abcdef.onnx"  # a graph of a model long gone
    stale.write_bytes(used.read_bytes())
    month_ago = time.time() - 31 * 86400
    for path in (used, stale):
        os.utime(path, (month_ago, month_ago))
    backend(cache).load(conv, 0)  # a hit: the graph it used is touched
    os.utime(conv, ns=(1, 1))
    backend(cache).load(conv, 0)  # a miss adds a graph, and prunes
    assert used.exists() and not stale.exists() and len(list(cache.iterdir())) == 2
