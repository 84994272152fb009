"""Fixtures shared by every tier: the example models, built once per session, and a clean
acl_core runtime around every test."""

from pathlib import Path

import pytest

from acl_core import acl
from acl_core.runtime import RUNTIME
from examples.build_models import build


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
