"""Device discovery: what the host shows, narrowed by the visibility variables."""

import pytest

from acl_core import acl, codes
from acl_core.discovery import visible_devices


@pytest.fixture
def host(tmp_path):
    """A fake /dev with four NPUs and a fake /proc with two GPUs."""
    dev, proc = tmp_path / "dev", tmp_path / "proc"
    dev.mkdir()
    for name in ("davinci0", "davinci1", "davinci2", "davinci3", "davinci_manager", "devmm_svm"):
        (dev / name).touch()
    gpus = proc / "driver" / "nvidia" / "gpus"
    for bus in ("0000:01:00.0", "0000:02:00.0"):
        (gpus / bus).mkdir(parents=True)
    return dev, proc


def test_every_present_device_without_a_variable(host):
    dev, proc = host
    assert [d.physical_id for d in visible_devices("cann", {}, dev, proc)] == [0, 1, 2, 3]
    assert [d.logical_id for d in visible_devices("cuda", {}, dev, proc)] == [0, 1]


def test_visibility_variables_narrow_and_renumber(host):
    dev, proc = host
    npus = visible_devices("cann", {"ASCEND_RT_VISIBLE_DEVICES": "2,3,9"}, dev, proc)
    assert [(d.logical_id, d.physical_id) for d in npus] == [(0, 2), (1, 3)]  # 9 is not there
    assert visible_devices("cuda", {"CUDA_VISIBLE_DEVICES": ""}, dev, proc) == []
    assert [d.physical_id for d in visible_devices("cuda", {"CUDA_VISIBLE_DEVICES": "1"}, dev, proc)] == [1]


def test_no_driver_trusts_the_variable(tmp_path):
    got = visible_devices("cann", {"ASCEND_RT_VISIBLE_DEVICES": "4,5"}, tmp_path, tmp_path)
    assert [(d.logical_id, d.physical_id) for d in got] == [(0, 4), (1, 5)]
    assert visible_devices("cann", {}, tmp_path, tmp_path) == []


def test_asking_for_cuda_without_it_is_an_error(monkeypatch):
    monkeypatch.setenv("ACLQ_PROVIDER", "cuda")
    assert acl.init() == codes.ACL_ERROR_RT_NO_DEVICE
    assert "install onnxruntime-gpu (cuda)" in acl.get_recent_err_msg()


def test_runtime_index_of_a_host_device(host, monkeypatch):
    from acl_core.discovery import runtime_index

    assert runtime_index("CPUExecutionProvider", 3, {}) == 3
    assert runtime_index("CANNExecutionProvider", 3, {}) == 3  # sees every device: same numbers
    # a container given NPU 3 alone sees it as its device 0
    assert runtime_index("CANNExecutionProvider", 3, {"ASCEND_RT_VISIBLE_DEVICES": "3"}) == 0
    assert runtime_index("CUDAExecutionProvider", 1, {"CUDA_VISIBLE_DEVICES": "0,1"}) == 1
