"""Arrays where they lie: reading a job's inputs and writing its outputs by local path or by URL.

A local .npy a job names rows of is read memory-mapped, so a job of a few rows of a 20 GB
array reads those rows only; URLs (``s3://…``, any scheme fsspec has a driver for) go through
fsspec, an optional extra (``aclq[s3]``), imported only when a URL is met; an .npy by URL is
read by byte range, its rows only. Outputs are written whole or not at all: a local file is
written under a temporary name and renamed; an object store makes an object visible only once
its upload completes. The worker reads and writes through here for jobs by reference
(docs/wire-format.md), and ``aclq batch`` writes its local outputs through here too.

Every failure is a WireError with ACL's 100003 (ACL_ERROR_INVALID_FILE) naming the location, or
100000 for rows that the array does not have.
"""

import io
import math
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from producer.codes import ACL_ERROR_INVALID_FILE, ACL_ERROR_INVALID_PARAM
from producer.errors import WireError
from producer.wire import InputRef, OutputRef

TMP_SUFFIX = ".tmp"
S3_EXTRA = "pip install 'aclq[s3]'"


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def local_path(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def read_input(ref: InputRef) -> np.ndarray:
    """The array (its ``rows``) ``ref`` names: those rows only (:func:`_rows`)."""
    try:
        if is_url(ref.url):
            with _filesystem(ref.url).open(ref.url, "rb") as f:
                array = _read(f, ref, mmap=False)
        else:
            array = _read(local_path(ref.url), ref, mmap=True)
    except WireError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise WireError(ACL_ERROR_INVALID_FILE, f"cannot read input {ref.url!r}: {type(exc).__name__}: {exc}") from None
    return array


def _read(source: Path | IO[bytes], ref: InputRef, mmap: bool) -> np.ndarray:
    suffix = Path(ref.url.split("?")[0]).suffix
    if suffix == ".npz":
        with np.load(source if isinstance(source, Path) else io.BytesIO(source.read()), allow_pickle=False) as z:
            names = z.files
            key = ref.key if ref.key is not None else (names[0] if len(names) == 1 else None)
            if key is None or key not in names:
                raise WireError(ACL_ERROR_INVALID_FILE, f"{ref.url!r} holds {names}: name the array (key)")
            return _rows(z[key], ref)
    if suffix != ".npy":
        raise WireError(ACL_ERROR_INVALID_FILE, f"input {ref.url!r}: expected a .npy or .npz file")
    if isinstance(source, Path):
        # mapped for some rows of it only: a whole file reads faster than it maps (a 12 KiB
        # .npy: 112 us read, 204 us mapped)
        mapped = mmap and ref.rows is not None
        return _rows(np.load(source, mmap_mode="r" if mapped else None, allow_pickle=False), ref)
    return _npy_rows(source, ref)


def _rows(array: np.ndarray, ref: InputRef) -> np.ndarray:
    """The rows asked for (all of them when none: a 0-d array stays 0-d). Rows of a mapped file
    are a view of the mapping, not a copy: the engine reads the pages where the page cache holds
    them (a 16 MiB copy a job cost B of bench.offline ~15 % of its rate), and the mapping closes
    with the job's last view of it, so a worker holds only its jobs' rows."""
    if ref.rows is None:  # a mapped file is copied; one already read is not copied again
        return np.array(array, order="C") if isinstance(array, np.memmap) else np.asarray(array, order="C")
    start, stop = ref.rows
    if array.ndim == 0 or stop > len(array):
        have = len(array) if array.ndim else 0
        raise WireError(ACL_ERROR_INVALID_PARAM, f"input {ref.url!r} has {have} rows, not rows {start}..{stop}")
    rows = array[start:stop]
    # an array read whole (an .npz's) is copied from, so that the rest of it is freed
    return np.ascontiguousarray(rows) if isinstance(array, np.memmap) else np.array(rows, order="C")


def _npy_rows(f: IO[bytes], ref: InputRef) -> np.ndarray:
    """The rows of an .npy read by byte range: the header, then those rows' bytes only."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(f)
    if fortran_order or dtype.hasobject or not shape:
        f.seek(0)
        return _rows(np.load(f, allow_pickle=False), ref)
    start, stop = ref.rows if ref.rows is not None else (0, shape[0])
    if stop > shape[0]:
        raise WireError(ACL_ERROR_INVALID_PARAM, f"input {ref.url!r} has {shape[0]} rows, not rows {start}..{stop}")
    row_bytes = math.prod(shape[1:]) * dtype.itemsize
    f.seek(f.tell() + start * row_bytes)
    data = f.read((stop - start) * row_bytes)
    if len(data) != (stop - start) * row_bytes:
        raise WireError(ACL_ERROR_INVALID_FILE, f"input {ref.url!r} ends before its header says")
    return np.frombuffer(data, dtype=dtype).reshape((stop - start, *shape[1:])).copy()


def output_files(target: OutputRef, count: int) -> list[str]:
    """Where ``count`` outputs go, in output order: ``<url>.npz``, or ``<url>_<i>.<format>``."""
    if target.format == "npz":
        return [f"{target.url}.npz"]
    return [f"{target.url}_{i}.{target.format}" for i in range(count)]


def done(target: OutputRef) -> bool:
    """Whether the outputs at ``target`` are all written (the file written last is there)."""
    first = output_files(target, 1)[0]
    return _filesystem(first).exists(first) if is_url(first) else local_path(first).exists()


def write_outputs(target: OutputRef, outputs: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """Write ``outputs`` at ``target``, each file whole or absent; the first file is written last,
    so that :func:`done` says every file is whole. The files written, in output order."""
    files = output_files(target, len(outputs))
    arrays: list[dict[str, np.ndarray]] = [dict(outputs)] if target.format == "npz" else [
        {name: a} for name, a in outputs.items()
    ]  # fmt: skip
    try:
        for location, part in list(zip(files, arrays))[1:] + list(zip(files, arrays))[:1]:
            save(location, part)
    except WireError:
        raise
    except (OSError, ValueError) as exc:
        raise WireError(
            ACL_ERROR_INVALID_FILE, f"cannot write outputs to {target.url!r}: {type(exc).__name__}: {exc}"
        ) from None
    return tuple(files)


def save(location: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` at ``location``, whole or not at all: all of them as .npz, or one array
    as .npy, .bin (raw bytes, C order, no header) or .txt, by the location's suffix."""
    with writing(location) as f:
        _write(f, Path(location).suffix, arrays)


@contextmanager
def writing(location: str) -> Iterator[IO[bytes]]:
    """A file to write ``location`` through: a temporary file renamed into place on success, or
    an object-store upload that completes on close."""
    if is_url(location):
        with _filesystem(location).open(location, "wb") as f:
            yield f
        return
    path = local_path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write(f: IO[bytes], suffix: str, arrays: Mapping[str, np.ndarray]) -> None:
    """``arrays`` as .npz, or one array as .npy, .bin (raw bytes, C order) or .txt."""
    if suffix == ".npz":
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
        return
    (array,) = arrays.values()
    if suffix == ".npy":
        np.save(f, array, allow_pickle=False)
    elif suffix == ".bin":
        f.write(np.ascontiguousarray(array).tobytes())
    else:
        rows = array.reshape(-1, array.shape[-1]) if array.ndim > 1 else array.reshape(1, -1)
        np.savetxt(f, rows, fmt=_text_format(array.dtype))


def _text_format(dtype: np.dtype[Any]) -> str:
    """Integers as integers; floats with the digits that read back to the same value."""
    if dtype.kind in "iub":
        return "%d"
    return "%.9g" if dtype.itemsize <= 4 else "%.17g"


def _filesystem(url: str) -> Any:
    """fsspec's filesystem for ``url``; 100003 saying what to install when there is none."""
    scheme = url.split("://", 1)[0]
    try:
        import fsspec
    except ImportError:
        raise WireError(ACL_ERROR_INVALID_FILE, f"{url!r}: URLs need fsspec here: {S3_EXTRA}") from None
    try:
        return fsspec.filesystem(scheme)
    except ImportError as exc:
        raise WireError(
            ACL_ERROR_INVALID_FILE, f"{url!r}: no fsspec driver for {scheme}:// here ({exc}); for s3: {S3_EXTRA}"
        ) from None
    except ValueError as exc:
        raise WireError(ACL_ERROR_INVALID_FILE, f"{url!r}: fsspec knows no scheme {scheme!r} ({exc})") from None
