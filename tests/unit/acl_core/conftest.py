import pytest

from acl_core import acl
from acl_core.runtime import RUNTIME


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Every test starts and ends with the process's runtime finalized."""
    yield
    if RUNTIME._initialized:
        RUNTIME.finalize()
    acl._handles.clear()


@pytest.fixture
def stream():
    """aclInit + device 0 + a stream: the state pyACL samples start from."""
    assert acl.init() == 0
    assert acl.rt.set_device(0) == 0
    handle, ret = acl.rt.create_stream()
    assert ret == 0
    return handle
