"""Fixtures shared by every tier: the example models, built once per session."""

from pathlib import Path

import pytest

from examples.build_models import build


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
