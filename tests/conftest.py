"""Fixtures shared by every tier: the example models, built once per session, and a clean
acl_core runtime around every test."""

import os
import tempfile
from pathlib import Path

import pytest

from acl_core import acl
from acl_core.runtime import RUNTIME
from examples.build_models import build

# ONNX Runtime's optimized graphs (acl_core/backends/graph_cache.py) go to a directory of the run,
# not the user's cache; set here, before any test or worker it starts reads it.
_graphs = tempfile.TemporaryDirectory(prefix="aclq-graphs-")
os.environ["ACLQ_GRAPH_CACHE_DIR"] = _graphs.name


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Every test starts and ends with this process's ACL runtime finalized."""
    yield
    if RUNTIME._initialized:
        RUNTIME.finalize()
    acl._handles.clear()


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository ``<name>/1/model.onnx`` holding every example model."""
    root = tmp_path_factory.mktemp("model_repo")
    build(root)
    return root


@pytest.fixture(scope="session")
def model_path(model_repo: Path):
    """``model_path("mlp")`` -> the path of that example model."""
    return lambda name: str(model_repo / name / "1" / "model.onnx")
