"""`aclq batch --outfmt`: each format writes what it says, and an item counts as done only when
every one of its files is whole."""

import numpy as np
import pytest

from producer.batch import Item, Plan, plan
from producer.errors import ConfigError
from producer.storage import write_outputs
from producer.wire import OUTPUT_FORMATS, OutputRef

OUTPUTS = {"y": np.arange(6, dtype=np.float32).reshape(2, 3), "z": np.arange(4, dtype=np.int64)}


def read_back(path, fmt, like):
    if fmt == "npy":
        return np.load(path)
    if fmt == "bin":
        return np.fromfile(path, dtype=like.dtype).reshape(like.shape)
    return np.loadtxt(path, dtype=like.dtype).reshape(like.shape)


@pytest.mark.parametrize("fmt", [f for f in OUTPUT_FORMATS if f != "npz"])
def test_a_file_per_output_in_the_models_order(fmt, tmp_path):
    assert write_outputs(OutputRef(str(tmp_path / "img"), fmt), OUTPUTS) == (
        str(tmp_path / f"img_0.{fmt}"),
        str(tmp_path / f"img_1.{fmt}"),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"img_0.{fmt}", f"img_1.{fmt}"]
    for i, array in enumerate(OUTPUTS.values()):
        np.testing.assert_array_equal(read_back(tmp_path / f"img_{i}.{fmt}", fmt, array), array)


def test_npz_holds_every_output_by_name(tmp_path):
    write_outputs(OutputRef(str(tmp_path / "img")), OUTPUTS)
    with np.load(tmp_path / "img.npz") as archive:
        assert {k: archive[k].tolist() for k in archive.files} == {k: a.tolist() for k, a in OUTPUTS.items()}


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_an_item_is_done_only_when_its_last_written_file_is_there(fmt, tmp_path):
    batch = Plan([Item("img", dict, tmp_path / "img", dict)], tmp_path, outfmt=fmt)
    (item,) = batch.items
    assert not batch.done(item)
    if fmt != "npz":  # output 1 written, output 0 (renamed last) not yet: a run killed between them
        write_outputs(OutputRef(str(tmp_path / "img"), fmt), {"z": OUTPUTS["z"]})
        (tmp_path / f"img_0.{fmt}").rename(tmp_path / f"img_1.{fmt}")
        assert not batch.done(item)
    batch.save(item, OUTPUTS)
    assert batch.done(item)


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="output format 'png': expected one of npz, npy, bin, txt"):
        plan(tmp_path, tmp_path / "out", outfmt="png")
