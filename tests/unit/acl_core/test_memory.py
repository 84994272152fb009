"""Device memory's addresses."""

import numpy as np
import pytest

from acl_core.memory import address


@pytest.mark.parametrize(
    "array",
    [
        np.ones((2, 3), np.float32),  # writable and contiguous: ctypes' view of the buffer
        np.frombuffer(b"read-only", np.uint8),  # the rest: NumPy's own
        np.empty(0, np.float32),
        np.ones((4, 4))[:, 1],
        np.asfortranarray(np.ones((3, 4))),
    ],
    ids=["writable", "read-only", "empty", "strided", "fortran"],
)
def test_the_address_is_numpys_for_every_kind_of_array(array):
    assert address(array) == array.ctypes.data
