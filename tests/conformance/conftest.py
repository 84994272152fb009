"""The conformance suite runs once per backend; a backend that is absent is skipped, saying why.

    pytest tests/conformance                      # every backend present on this host
    ACLQ_CONFORMANCE=pyacl pytest tests/conformance   # one of them

On an Ascend host, the pyACL backend needs the ONNX test models as .om files: `atc` (from the
CANN toolkit) converts them once per session, for the SoC named by ACLQ_SOC_VERSION.
"""

import os
import shutil
import subprocess

import onnxruntime as ort
import pytest

from acl_core import acl

#: backend label -> (ACLQ_BACKEND, ACLQ_PROVIDER)
BACKENDS = {
    "onnxruntime-cpu": ("onnxruntime", "cpu"),
    "onnxruntime-cuda": ("onnxruntime", "cuda"),
    "onnxruntime-cann": ("onnxruntime", "cann"),
    "pyacl": ("pyacl", "auto"),
}
_ORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "cann": "CANNExecutionProvider"}


def _absent(label: str) -> str | None:
    """Why ``label`` cannot run here, or None when it can."""
    wanted = os.environ.get("ACLQ_CONFORMANCE")
    if wanted and wanted != label:
        return f"ACLQ_CONFORMANCE={wanted} selects another backend"
    backend, provider = BACKENDS[label]
    if backend == "pyacl":
        try:
            import acl as _  # noqa: F401 - the CANN toolkit's module, not acl_core's
        except ImportError:
            return "the CANN toolkit's Python 'acl' module is not importable (not an Ascend host)"
        if shutil.which("atc") is None or not os.environ.get("ACLQ_SOC_VERSION"):
            return "converting the test models to .om needs CANN's atc and ACLQ_SOC_VERSION (e.g. Ascend910B)"
        return None
    if _ORT_NAMES[provider] not in ort.get_available_providers():
        package = {"cuda": "onnxruntime-gpu", "cann": "onnxruntime-cann"}[provider]
        return f"{_ORT_NAMES[provider]} is not in this onnxruntime build (install {package})"
    return None


@pytest.fixture(params=list(BACKENDS), autouse=True)
def backend(request, monkeypatch) -> str:
    reason = _absent(request.param)
    if reason:
        pytest.skip(reason)
    engine, provider = BACKENDS[request.param]
    monkeypatch.setenv("ACLQ_BACKEND", engine)
    monkeypatch.setenv("ACLQ_PROVIDER", provider)
    return request.param


@pytest.fixture(scope="session")
def om_models(model_repo, tmp_path_factory):
    """The example models as .om files, converted by CANN's atc (pyACL backend only)."""
    out = tmp_path_factory.mktemp("om")
    paths = {}
    for onnx_path in model_repo.glob("*/1/model.onnx"):
        name = onnx_path.parent.parent.name
        target = out / name
        subprocess.run(
            ["atc", "--framework=5", f"--model={onnx_path}", f"--output={target}",
             f"--soc_version={os.environ['ACLQ_SOC_VERSION']}"],
            check=True, capture_output=True,
        )  # fmt: skip
        paths[name] = str(target) + ".om"
    return paths


@pytest.fixture
def model_path(backend, model_repo, request):
    """``model_path("mlp")``: the model in the backend's own format."""
    if backend == "pyacl":
        om = request.getfixturevalue("om_models")
        return lambda name: om[name]
    return lambda name: str(model_repo / name / "1" / "model.onnx")


@pytest.fixture
def stream():
    """aclInit + device 0 + a stream: the state pyACL samples start from."""
    assert acl.init() == 0
    assert acl.rt.set_device(0) == 0
    handle, ret = acl.rt.create_stream()
    assert ret == 0
    return handle
