"""Dynamic batching: which jobs may share one execution, and how their rows are joined and split.

Jobs batch together when their model's config allows it (``max_batch_size`` > 1), every input
and output of the model has a dynamic first axis, and the jobs agree on everything but that axis:
model version, exec options, requested outputs, and each input's dtype and trailing dims.
"""

from collections.abc import Hashable, Mapping, Sequence
from typing import Generic, TypeVar

import numpy as np

from acl_core import ExecConfig, Model, codes
from acl_core.errors import error_for
from producer.wire import leading_rows

T = TypeVar("T")


def batch_key(
    model: Model,
    max_batch_size: int,
    feeds: Mapping[str, np.ndarray],
    config: ExecConfig,
    output_names: Sequence[str] | None,
) -> Hashable | None:
    """What a job must share with others to run in one execution with them; None: it runs alone."""
    if max_batch_size <= 1 or not all(spec.dims and spec.dims[0] < 0 for spec in (*model.inputs, *model.outputs)):
        return None
    if set(feeds) != {spec.name for spec in model.inputs}:
        return None  # the execution names what is wrong, for this job alone
    if not 1 <= leading_rows(feeds) <= max_batch_size:
        return None
    trailing = []
    for spec in model.inputs:
        array = feeds[spec.name]
        fits = array.ndim == len(spec.dims) and all(d < 0 or d == n for d, n in zip(spec.dims[1:], array.shape[1:]))
        if not fits or array.dtype != spec.numpy_dtype:
            return None
        trailing.append((spec.name, array.shape[1:]))
    key = (id(model), config, tuple(output_names) if output_names is not None else None, tuple(trailing))
    try:
        hash(key)
    except TypeError:  # an exec option of an unhashable type: the execution rejects it, alone
        return None
    return key


class Packer(Generic[T]):
    """Groups items in arrival order: compatible ones share a group until it would pass
    ``max_rows``; an item with no key is a group of its own."""

    def __init__(self) -> None:
        self._groups: list[list[T]] = []
        self._open: dict[Hashable, tuple[list[T], int]] = {}

    def add(self, item: T, key: Hashable | None, rows: int, max_rows: int) -> None:
        if key is None:
            self._groups.append([item])
            return
        group, used = self._open.get(key, (None, 0))
        if group is None or used + rows > max_rows:
            group, used = [], 0
            self._groups.append(group)
        group.append(item)
        self._open[key] = (group, used + rows)

    def groups(self) -> list[list[T]]:
        return self._groups


def join(feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The jobs' inputs concatenated along the first axis: one copy of their bytes."""
    return {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}


def split(outputs: Mapping[str, np.ndarray], rows: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Each job's rows of the outputs, as views (no copy). 100000 when an output's first axis is
    not the rows fed in, which the model's description promised it would be."""
    total = sum(rows)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise error_for(
                codes.ACL_ERROR_INVALID_PARAM,
                f"output {name!r} has {array.shape[0] if array.ndim else 0} rows for {total} batched rows",
            )
    ends = np.cumsum(rows).tolist()
    return [{name: array[end - n : end] for name, array in outputs.items()} for n, end in zip(rows, ends)]
