"""Arrays read where they lie (producer/storage.py): what a worker reads by reference."""

import io

import numpy as np
import pytest

from producer.errors import WireError
from producer.storage import _npy_rows, read_input
from producer.wire import InputRef


def test_a_local_read_keeps_the_shape_and_copies_only_the_rows(tmp_path):
    np.save(tmp_path / "n.npy", np.array(200_000))
    np.save(tmp_path / "m.npy", np.arange(12.0).reshape(4, 3))
    np.savez(tmp_path / "ab.npz", a=np.zeros(2), b=np.ones((3, 2)))
    scalar = read_input(InputRef(str(tmp_path / "n.npy")))
    assert scalar.shape == () and int(scalar) == 200_000  # a 0-d array stays 0-d
    rows = read_input(InputRef(str(tmp_path / "m.npy"), rows=(1, 3)))
    assert type(rows) is np.ndarray and rows.flags.c_contiguous and rows.tolist() == [[3, 4, 5], [6, 7, 8]]
    assert read_input(InputRef(f"file://{tmp_path / 'ab.npz'}", rows=(2, 3), key="b")).tolist() == [[1, 1]]


def test_an_npy_by_url_is_read_by_byte_range():
    buffer = io.BytesIO()
    np.save(buffer, np.arange(20, dtype=np.int32).reshape(10, 2))
    buffer.seek(0)
    assert _npy_rows(buffer, InputRef("s3://b/x.npy", rows=(7, 9))).tolist() == [[14, 15], [16, 17]]


@pytest.mark.parametrize(
    "ref, code, says",
    [
        (InputRef("/no/such/file.npy"), 100003, "cannot read input '/no/such/file.npy'"),
        (InputRef("/tmp/x.csv"), 100003, "expected a .npy or .npz file"),
        (InputRef("nope://b/x.npy"), 100003, "fsspec knows no scheme 'nope'"),
    ],
)
def test_a_reference_that_cannot_be_read_is_named(ref, code, says):
    with pytest.raises(WireError) as failed:
        read_input(ref)
    assert failed.value.code == code and says in failed.value.message
