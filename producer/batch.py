"""Offline batch inference: many items through the queue, outputs written as they arrive.

Input forms (:func:`plan`): a directory of .npy/.npz files (one job per file), one .npy/.npz
whose leading axis is split into jobs of ``batch_size`` rows, or a JSONL manifest whose lines map
input names to files. Every output is written atomically (temporary file + rename), so an
interrupted run leaves only whole files, and ``resume`` skips the items whose outputs exist.

Output formats (``outfmt``): ``npz``, one archive per item holding every output by name; or, as
ais_bench writes them, one file per output named ``<item>_<i>.<ext>`` in the model's output
order: ``npy``, ``bin`` (the raw bytes, C order, no header: dtype and shape are the model's) or
``txt`` (``numpy.savetxt``, one row per leading index).
"""

import functools
import itertools
import json
import logging
import math
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Unpack

import numpy as np

from producer import codes, storage
from producer.client import Client, SubmitOptions
from producer.errors import (
    AclqError,
    BrokerConnectionError,
    ConfigError,
    JobFailed,
    JobNotFound,
    JobTimeout,
    WireError,
)
from producer.status import fetch_status
from producer.wire import (
    OUTPUT_FORMATS,
    POSITIONAL,
    InputRef,
    OutputRef,
    ResultEnvelope,
    WorkerBeat,
    leading_rows,
    rows_signature,
)

log = logging.getLogger(__name__)

PARTS_DIR = ".parts"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Item:
    """One job of a batch: where its inputs come from and where its outputs go."""

    key: str  #: how the item is named in progress and in the summary
    load: Callable[[], dict[str, np.ndarray]]  #: its inputs, read here (transfer "bytes"), as a worker reads refs
    output: Path  #: its outputs' path less the suffix (storage.output_files)
    refs: Callable[[], dict[str, InputRef]]  #: where its inputs lie, for a worker to read (transfer "ref")


Loaded = tuple[Item, dict[str, Any]]  #: an item and its job's inputs: arrays, or references


@dataclass
class Plan:
    items: list[Item]
    output: Path
    #: run after every item is done, e.g. reassembling a split array; None when nothing to do
    finish: Callable[[], None] | None = None
    outfmt: str = "npz"  #: how each item's outputs are written (OUTPUT_FORMATS)
    group_size: int = 1  #: items (files) that share a job when their inputs agree
    #: "bytes": inputs read here and sent, outputs sent back and written here; "ref": the
    #: workers read the inputs where they lie and write the outputs themselves (TRANSFERS)
    transfer: str = "bytes"
    #: its items are rows of one array (else files: a directory's or a manifest's)
    splits: bool = False

    def target(self, item: Item) -> OutputRef:
        return OutputRef(str(item.output), self.outfmt)

    def done(self, item: Item) -> bool:
        """Whether the item's outputs are all written (what ``resume`` skips)."""
        return storage.done(self.target(item))

    def save(self, item: Item, outputs: Mapping[str, np.ndarray]) -> None:
        storage.write_outputs(self.target(item), outputs)

    def inputs(self, item: Item) -> dict[str, Any]:
        """What a job of ``item`` carries: its arrays, or where they lie."""
        return dict(item.refs()) if self.transfer == "ref" else item.load()

    def by(self, transfer: str) -> "Plan":
        """This plan with its data travelling ``transfer`` ("bytes" or "ref": by reference,
        every file goes alone; files share jobs by bytes only)."""
        if transfer not in ("bytes", "ref"):
            raise ConfigError(f"transfer {transfer!r}: expected bytes or ref (auto is decided by choose_transfer)")
        return replace(self, transfer=transfer, group_size=1 if transfer == "ref" else self.group_size)

    def submit_options(self, item: Item) -> SubmitOptions:
        """The worker writes the outputs of a job by reference itself; the rows of a job that
        splits an array or stacks files are independent (the plan already treats them so), so
        the worker may run them in runs of the size its model runs fastest at."""
        options: SubmitOptions = {"split_rows": self.splits or self.group_size > 1}
        if self.transfer == "ref":
            options["output_to"] = self.target(item)
        return options


@dataclass
class Failure:
    item: str
    code: int | None
    name: str
    message: str


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    jobs: int = 0  #: jobs that carried the done items: fewer than them when files share jobs
    failed: int = 0
    skipped: int = 0  #: already complete (resume)
    transfer: str = "bytes"  #: how inputs and outputs travelled: "bytes" or "ref"
    retried: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    items_per_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    max_in_flight: int = 0
    devices: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def atomic_write_text(path: Path, text: str) -> None:
    with storage.writing(str(path)) as f:
        f.write(text.encode())


#: the most input bytes of one job that ``--batch-size auto`` makes: a worker holds a job's
#: inputs and outputs at once (the activations of one run of it: worker/runs.py), and a larger
#: job gains no more (jobs of 2,730 and 5,460 conv rows by reference ran no faster than 1,365)
AUTO_JOB_BYTES = 16 << 20
#: what ``--batch-size auto`` aims a job's cost beyond its execution at: this share of it
AUTO_OVERHEAD = 0.03
#: rows of the probe jobs of ``--batch-size auto`` (a split array's; a file's own rows else)
PROBE_ROWS = 16
#: timed probe jobs of each size, at least: the fastest is the model's time
PROBE_TIMED = 3
#: files the probe passes over (unreadable, or shaped otherwise than the first) before it sends
#: the first one's inputs again: a directory whose first file is its odd one out is not read whole
PROBE_PASSES = 64
#: how long the larger probe job should execute, ms: long enough to time the rows, short
#: enough that probing a slow model costs little
PROBE_MS = 20.0
#: where a run with ``--batch-size auto`` records its choice, for ``--resume`` to keep it
BATCH_SIZE_FILE = ".batch_size"


@dataclass(frozen=True)
class Probed:
    """A probe job that carried files of the batch, whose outputs it wrote: their keys, and its
    answer (what the run's summary counts of it)."""

    keys: tuple[str, ...]
    answer: ResultEnvelope


@dataclass(frozen=True)
class JobSize:
    """What ``--batch-size auto`` chose (rows a job; files a job for a directory or a manifest),
    why, and the probe's jobs whose files are done, which :func:`run` leaves out."""

    size: int
    why: str
    probed: tuple[Probed, ...] = ()


def auto_batch_size(
    client: Client, model: str, probe: Plan, *, resume: bool = False, **submit: Unpack[SubmitOptions]
) -> JobSize:
    """From probe jobs of ``probe`` (a plan of PROBE_ROWS rows a job; give it the run's output
    format, as its files' outputs are the run's), the model's execution time per row and a job's
    cost beyond it (the queue, the worker's handling), so that the cost stays about
    AUTO_OVERHEAD of the execution; at most AUTO_JOB_BYTES of input a job, and few enough rows
    that the devices' wait on each other's last jobs (half a job each, on average) stays about
    AUTO_OVERHEAD of the run too. A resumed run keeps the size its first run chose."""
    saved = probe.output / BATCH_SIZE_FILE
    if resume and saved.exists():
        return JobSize(int(saved.read_text()), f"kept from the run being resumed ({saved})")
    if not probe.items:
        return JobSize(1, "nothing to run")
    feed = _ProbeInputs(probe)
    if feed.unit is None:
        return JobSize(1, f"none of the first {PROBE_PASSES} items could be read (the run says why, item by item)")
    unit = feed.unit
    rows = leading_rows(unit)
    if not rows:  # no common leading axis: nothing to stack
        return JobSize(1, "the inputs have no common leading axis")
    row_bytes = sum(a.nbytes for a in unit.values()) / rows
    devices = 1 if submit.get("device") is not None else max(1, len(fetch_status(client.settings).workers))
    _rounds(client, model, feed, 1, devices, devices, submit)  # the model loaded, each device's first run done
    small_ms = _rounds(client, model, feed, 1, devices, PROBE_TIMED, submit)
    # a larger job, to tell the time a row takes from a run's fixed cost
    big = min(max(2, math.ceil(PROBE_MS / max(small_ms[0].timings["exec_ms"], 1e-3))), 64)
    _rounds(client, model, feed, big, devices, devices, submit)
    large_ms = _rounds(client, model, feed, big, devices, PROBE_TIMED, submit)
    # The fastest of each: what a neighbour's burst or a page fault adds is noise, never the model's.
    small_exec = min(d.timings["exec_ms"] for d in small_ms)
    large_exec = min(d.timings["exec_ms"] for d in large_ms)
    per_row = max((large_exec - small_exec) / (rows * (big - 1)), 1e-6)
    fixed = max(small_exec - per_row * rows, 0.0)  # a run's own cost beyond its rows
    # The lower median: a worker may claim two of a round's jobs (2 rounds in 20 for ResNet-50
    # beside a batching model, whose prefetch lets it) and run them one after the other; the
    # second's wait behind the first (80-90 ms there) is the probe's, not a job's cost in the run.
    beyond = statistics.median_low(d.timings["total_ms"] - d.timings["exec_ms"] for d in small_ms) + fixed
    wanted = math.ceil(beyond / (AUTO_OVERHEAD * per_row))
    cap = max(int(AUTO_JOB_BYTES // max(row_bytes, 1)), 1)
    tail = max(1, int(len(probe.items) * rows * AUTO_OVERHEAD / (0.5 * devices)))
    size = max(1, min(wanted, cap, tail))
    if not probe.splits:  # files a job: rows a job over a file's rows
        size = max(1, size // rows)
    probe.output.mkdir(parents=True, exist_ok=True)
    saved.write_text(str(size))
    why = f"{per_row:.3g} ms a row, {beyond:.1f} ms a job beyond its rows: {wanted} rows keep it under "
    why += f"{AUTO_OVERHEAD:.0%}"
    if tail < min(wanted, cap):
        why += f"; {tail} rows keep the last jobs' wait on {devices} devices under {AUTO_OVERHEAD:.0%}"
    elif wanted > cap:
        why += f"; {cap} rows make {AUTO_JOB_BYTES >> 20} MiB, the most a job takes"
    if feed.probed:
        why += f"; the probe's {sum(len(p.keys) for p in feed.probed)} files are done"
    return JobSize(size, why, tuple(feed.probed))


class _ProbeInputs:
    """What the probe's jobs carry. A directory's or a manifest's files, in the run's order, those
    shaped as the first (the others are left to the run, which says what is wrong with them),
    with their outputs written as the run writes them: the probe's jobs are the run's first, not
    work thrown away (ResNet-50 by bytes on two devices: 18 files, ~0.7 s of the devices). Once
    fewer are left than a job takes or it passed over PROBE_PASSES others, and for a split array
    (whose jobs the probe's rows would not divide), the first item's inputs again."""

    def __init__(self, probe: Plan) -> None:
        self._plan = probe
        self._passes = PROBE_PASSES
        self._again: dict[int, dict[str, np.ndarray]] = {}  # the first item's inputs n times, by n
        self.probed: list[Probed] = []
        #: the first item's inputs, which the others must match; None: none of the first
        #: PROBE_PASSES could be read
        self.unit: dict[str, np.ndarray] | None = None
        read = ((item, _read_or_none(item)) for item in probe.items)  # each item read once
        for item, inputs in read:
            if inputs is not None:
                self.unit, self._shape = inputs, (rows_signature(inputs), leading_rows(inputs))
                self._files = iter([]) if probe.splits else itertools.chain([(item, inputs)], read)
                return
            if not self._passed():
                return
        self._files = iter([])

    def _passed(self) -> bool:
        """Count a file passed over; False once PROBE_PASSES are, and the probe reads no more."""
        self._passes -= 1
        if not self._passes:
            self._files = iter([])
        return self._passes > 0

    def job(self, units: int) -> tuple[list[Loaded], dict[str, np.ndarray]]:
        """The next ``units`` files shaped as the first, and their inputs stacked; or no files,
        and the first item's inputs ``units`` times."""
        assert self.unit is not None  # auto_batch_size sends no job without it
        files: list[Loaded] = []
        for item, inputs in self._files:
            if inputs is not None and (rows_signature(inputs), leading_rows(inputs)) == self._shape:
                files.append((item, inputs))
                if len(files) == units:
                    return files, _stacked(files)
            elif not self._passed():
                break
        if units not in self._again:  # made once: every later job of this size sends the same
            self._again[units] = {name: np.concatenate([a] * units) for name, a in self.unit.items()}
        return [], self._again[units]

    def keep(self, files: list[Loaded], answer: ResultEnvelope) -> None:
        """Write the outputs of the files a probe job carried; one that cannot be written, or
        outputs that do not keep the inputs' rows, leave the files to the run."""
        if not files:
            return
        try:
            for (item, _), outputs in zip(files, _split(answer.outputs, files)):
                self._plan.save(item, outputs)
        except (JobFailed, WireError, OSError):
            return
        self.probed.append(Probed(tuple(item.key for item, _ in files), answer))


def _read_or_none(item: Item) -> dict[str, np.ndarray] | None:
    """The item's inputs; None when they cannot be read, which is the run's to report with its
    code (_run_group), never the probe's to fail the batch for."""
    try:
        return item.load()
    except (WireError, OSError, ValueError):
        return None


def _rounds(
    client: Client, model: str, feed: _ProbeInputs, units: int, devices: int, jobs: int, submit: SubmitOptions
) -> list[ResultEnvelope]:
    """At least ``jobs`` jobs of ``units`` of ``feed``'s inputs each, in rounds of one a device
    sent together, so that idle workers take one each and run side by side, as the run's jobs
    will. Timed one job at a time, every device but one idled (ResNet-50's probe on two devices:
    0.96 s that way, 0.74 s so), and each timed run had the caches and memory bandwidth its
    neighbours share in the run to itself.

    The first round on fresh workers is each one's first run of the shape, which grows its
    engine's memory and is slower (ONNX Runtime's arena): timed, workers that had not run it yet
    made it look like the model's cost (the example conv from fresh workers: 0.071-0.074 ms a
    row, against 0.031-0.043 once each had run it; jobs of ~800 rows where the 16 MiB cap,
    1,365, was meant), so the probe runs one untimed round of each shape first."""
    details: list[ResultEnvelope] = []
    while len(details) < jobs:
        sent = []
        for _ in range(devices):
            files, inputs = feed.job(units)
            sent.append((files, client.submit(model, inputs, **submit)))
        for files, job in sent:
            details.append(job.details())
            feed.keep(files, details[-1])
    return details


#: --transfer choices: "auto" decides by where the workers are (:func:`choose_transfer`)
TRANSFERS = ("auto", "ref", "bytes")


def choose_transfer(workers: list[WorkerBeat], host: str) -> tuple[str, str]:
    """ "ref" when every live worker runs on ``host`` (this one: they can read its files and
    write its output directory), else "bytes"; and why, for the user to see."""
    elsewhere = sorted({w.host for w in workers if w.host != host})
    if not workers:
        return "bytes", "no live worker to ask: inputs travel as bytes"
    if elsewhere:
        return "bytes", f"workers on other hosts ({', '.join(elsewhere)}) may not reach this host's files"
    return "ref", f"every live worker ({len(workers)}) runs on this host ({host}): they read and write the files"


def plan(
    source: Path,
    output: Path,
    *,
    batch_size: int = 1,
    input_name: str = POSITIONAL,
    outfmt: str | None = None,
    transfer: str = "bytes",
) -> Plan:
    """The items of ``source``; a .npy stands for the input ``input_name`` (default: the only one).
    ``batch_size``: rows a job when one array is split; files a job for a directory or a manifest
    (their rows stacked, outputs split back per file). ``outfmt`` (OUTPUT_FORMATS): npz per
    item by default; a split array's outputs are put back together as one file per output name,
    .npy by default. ``transfer``: :meth:`Plan.by`."""
    source, output = source.absolute(), output.absolute()  # by reference, workers read them
    return _plan(source, output, batch_size, input_name, outfmt).by(transfer)


def _plan(source: Path, output: Path, batch_size: int, input_name: str, outfmt: str | None) -> Plan:
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if outfmt is not None and outfmt not in OUTPUT_FORMATS:
        raise ConfigError(f"output format {outfmt!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix in (".npy", ".npz") and p.is_file())
        relative = [p.relative_to(source) for p in files]
        items = [
            Item(str(r), functools.partial(_read, refs), output / r.with_suffix(""), refs)
            for r in relative
            for refs in [functools.partial(_file_refs, source / r, input_name)]
        ]
        return Plan(items, output, outfmt=outfmt or "npz", group_size=batch_size)
    if source.suffix == ".jsonl":
        return Plan(_manifest_items(source, output), output, outfmt=outfmt or "npz", group_size=batch_size)
    if source.suffix in (".npy", ".npz") and source.is_file():
        return _split_plan(source, output, batch_size, input_name, outfmt or "npy")
    raise ConfigError(f"{source}: expected a directory, a .npy/.npz file or a .jsonl manifest")


def _manifest_items(manifest: Path, output: Path) -> list[Item]:
    items = []
    for number, line in enumerate(manifest.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            files = {name: manifest.parent / str(path) for name, path in entry.items() if name != "id"}
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{manifest}:{number + 1}: not a JSON map of input name to file: {exc}") from None
        key = str(entry.get("id", f"{number:08d}"))
        refs = {name: InputRef(str(path.absolute())) for name, path in files.items()}
        where: Callable[[], dict[str, InputRef]] = functools.partial(dict, refs)
        items.append(Item(key, functools.partial(_read, where), output / key, where))
    return items


def _file_refs(path: Path, input_name: str) -> dict[str, InputRef]:
    """Where a directory's file holds its inputs: an .npy the one input, an .npz one per key."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {k: InputRef(str(path), key=k) for k in archive.files}
    return {input_name: InputRef(str(path))}


def _rows(arrays: Mapping[str, np.ndarray], start: int, count: int) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(a[start : start + count]) for name, a in arrays.items()}


def _read(refs: Callable[[], dict[str, InputRef]]) -> dict[str, np.ndarray]:
    """Inputs read here from where they lie (a mapping opened and closed for these rows only)."""
    return {name: storage.read_input(ref) for name, ref in refs().items()}


def _split_refs(source: Path, names: list[str], input_name: str, rows: tuple[int, int]) -> dict[str, InputRef]:
    if source.suffix == ".npz":
        return {name: InputRef(str(source), rows=rows, key=name) for name in names}
    return {input_name: InputRef(str(source), rows=rows)}


def _split_plan(source: Path, output: Path, batch_size: int, input_name: str, outfmt: str) -> Plan:
    if source.suffix == ".npz":  # an archive is read whole (its members cannot be mapped)
        with np.load(source, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    else:  # only its header here: each job reads its own rows (_read), as a worker does by reference
        arrays = {input_name: np.load(source, mmap_mode="r", allow_pickle=False)}
    rows = {len(a) if a.ndim else -1 for a in arrays.values()}
    if len(rows) != 1 or -1 in rows:
        raise ConfigError(f"{source}: every array must share its leading axis to be split, got lengths {sorted(rows)}")
    (n,) = rows
    names = list(arrays)
    if source.suffix != ".npz":
        del arrays  # a mapping held for the whole run would count every page it read in this process
    parts = output / PARTS_DIR
    items = []
    for start in range(0, n, batch_size):
        refs = functools.partial(_split_refs, source, names, input_name, (start, min(start + batch_size, n)))
        load = (
            functools.partial(_rows, arrays, start, batch_size)
            if source.suffix == ".npz"
            else functools.partial(_read, refs)
        )
        items.append(
            Item(f"rows {start}-{min(start + batch_size, n) - 1}", load, parts / f"{start // batch_size:08d}", refs)
        )

    def reassemble() -> None:
        """The outputs' rows in input order: one file per output name (``outputs.npz`` for npz)."""
        chunks: dict[str, list[np.ndarray]] = {}
        for item in items:
            with np.load(item.output.with_suffix(".npz"), allow_pickle=False) as part:
                for name in part.files:
                    chunks.setdefault(name, []).append(part[name])
        whole = {name: np.concatenate(pieces) for name, pieces in chunks.items()}
        if outfmt == "npz":
            storage.save(str(output / "outputs.npz"), whole)
        else:
            for name, array in whole.items():
                storage.save(str(output / f"{name}.{outfmt}"), {name: array})

    return Plan(items, output, reassemble, splits=True)


class _Progress:
    """A tqdm bar on stderr (done, failed, items/s, ETA), or log lines when quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self._bar = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="item", dynamic_ncols=True)

    def update(self, key: str, ok: bool, failed: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix(failed=failed, refresh=False)
            self._bar.update(1)
        else:
            log.info("item %s: %s", key, "done" if ok else "FAILED")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_batch(
    client: Client,
    model: str,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    input_name: str = POSITIONAL,
    outfmt: str | None = None,
    transfer: str = "bytes",
    window: int = 16,
    retries: int = 0,
    resume: bool = False,
    quiet: bool = True,
    **options: Unpack[SubmitOptions],
) -> Summary:
    """Offline inference over a directory, a split array or a manifest (:func:`plan`) through
    ``client``; failed items are reported in the returned summary, not raised."""
    work = plan(
        Path(source), Path(output), batch_size=batch_size, input_name=input_name, outfmt=outfmt, transfer=transfer
    )
    return run(client, model, work, window=window, retries=retries, resume=resume, quiet=quiet, **options)


def run(
    client: Client,
    model: str,
    batch: Plan,
    *,
    window: int = 16,
    retries: int = 0,
    resume: bool = False,
    quiet: bool = False,
    stop: threading.Event | None = None,
    probed: Sequence[Probed] = (),
    **submit: Unpack[SubmitOptions],
) -> Summary:
    """Run every item with at most ``window`` jobs in flight; failures are counted, not raised.

    ``submit`` holds each job's options (:class:`SubmitOptions`). Setting ``stop`` ends the run
    after the jobs in flight. ``probed``: the jobs of :func:`auto_batch_size`'s probe that carried
    items of this batch; those whose outputs are there are counted done, not run again (nor in
    ``items_per_s``, the rate of the items this call ran).
    """
    if window < 1 or retries < 0:
        raise ConfigError(f"window must be >= 1 and retries >= 0, got {window} and {retries}")
    summary = Summary(total=len(batch.items), transfer=batch.transfer)
    if resume:  # temporary files of a run that was killed mid-write
        for stale in batch.output.rglob(f".*{storage.TMP_SUFFIX}"):
            stale.unlink()
    probed_keys = {key for job in probed for key in job.keys}
    by_probe = {item.key for item in batch.items if item.key in probed_keys and batch.done(item)}
    todo = [item for item in batch.items if item.key not in by_probe and not (resume and batch.done(item))]
    summary.skipped = summary.total - len(todo) - len(by_probe)
    progress = _Progress(len(todo), quiet)
    tally = _Tally(summary)
    for job in probed:
        if done := [key for key in job.keys if key in by_probe]:
            tally.done(len(done), job.answer.timings["total_ms"], job.answer.device)
    in_flight = [0]
    stop = stop or threading.Event()
    started = time.perf_counter()

    def one(group: list[Item]) -> None:
        with tally.lock:
            in_flight[0] += 1
            summary.max_in_flight = max(summary.max_in_flight, in_flight[0])
        try:
            outcomes = _run_group(client, model, batch, group, retries, submit, tally)
        finally:
            with tally.lock:
                in_flight[0] -= 1
        for item, ok in zip(group, outcomes):
            progress.update(item.key, ok, summary.failed)

    groups = [todo[i : i + batch.group_size] for i in range(0, len(todo), batch.group_size)]
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="aclq-batch") as pool:
        pending: set[Future[None]] = set()
        for group in _until(groups, stop):
            if len(pending) >= window:  # backpressure: never more than `window` jobs in flight
                _, pending = wait(pending, return_when=FIRST_COMPLETED)
            pending.add(pool.submit(one, group))
        wait(pending)
    progress.close()
    summary.interrupted = stop.is_set()
    if batch.finish is not None and not summary.interrupted and summary.failed == 0:
        batch.finish()
    _conclude(summary, tally.latencies, tally.devices, time.perf_counter() - started, len(by_probe))
    return summary


def _until(groups: list[list[Item]], stop: threading.Event) -> Iterator[list[Item]]:
    for group in groups:
        if stop.is_set():
            return
        yield group


class _Tally:
    """The run's accounting, shared by its threads."""

    def __init__(self, summary: Summary) -> None:
        self.summary = summary
        self.latencies: list[float] = []
        self.devices: Counter[str] = Counter()
        self.lock = threading.Lock()

    def done(self, count: int, latency_ms: float, device: int | None) -> None:
        with self.lock:
            self.summary.done += count
            self.summary.jobs += 1
            self.latencies.extend([latency_ms] * count)
            self.devices[str(device)] += count

    def failed(self, items: list[Item], failure: Failure) -> None:
        with self.lock:
            self.summary.failed += len(items)
            self.summary.failures.extend(replace(failure, item=item.key) for item in items)
        for item in items:
            log.warning("item %s failed: %s %s", item.key, failure.name, failure.message)

    def retried(self) -> None:
        with self.lock:
            self.summary.retried += 1


def _run_group(
    client: Client, model: str, batch: Plan, group: list[Item], retries: int, submit: SubmitOptions, tally: _Tally
) -> list[bool]:
    """Run a group of items (``batch.group_size``, one job when their inputs agree); per item,
    whether it succeeded. An item that cannot be read fails alone; the items whose inputs share
    the first one's dtypes and shapes past the leading axis go as one job, the rest one by one."""
    ok = dict.fromkeys((item.key for item in group), False)
    loaded: list[Loaded] = []
    for item in group:
        try:
            loaded.append((item, batch.inputs(item)))
        except WireError as exc:  # an input that cannot be read (storage.read_input: missing, not an array)
            tally.failed([item], Failure(item.key, exc.code, exc.name, exc.message))
        except (OSError, ValueError) as exc:  # an .npz whose arrays cannot even be listed
            tally.failed([item], _file_failure(item, exc))
    jobs: list[list[Loaded]] = []
    for entry in loaded:
        if (
            jobs
            and len(group) > 1
            and leading_rows(entry[1])
            and rows_signature(entry[1]) == rows_signature(jobs[0][0][1])
        ):
            jobs[0].append(entry)
        else:
            jobs.append([entry])
    for job in jobs:
        if _attempts(client, model, batch, job, retries, submit, tally):
            ok.update(dict.fromkeys((item.key for item, _ in job), True))
    return list(ok.values())


def _stacked(job: list[Loaded]) -> dict[str, np.ndarray]:
    if len(job) == 1:
        return job[0][1]
    return {name: np.concatenate([inputs[name] for _, inputs in job]) for name in job[0][1]}


def _split(outputs: Mapping[str, np.ndarray], job: list[Loaded]) -> list[dict[str, np.ndarray]]:
    """A stacked job's outputs, back per item by its rows; JobFailed when an output does not keep
    the batch axis (its rows are not the inputs' rows)."""
    if len(job) == 1:
        return [dict(outputs)]
    rows = [leading_rows(inputs) for _, inputs in job]
    for name, array in outputs.items():
        if array.ndim == 0 or len(array) != sum(rows):
            raise JobFailed(
                "", codes.ACL_ERROR_INVALID_PARAM, codes.NAMES[codes.ACL_ERROR_INVALID_PARAM],
                f"output {name!r} has {len(array) if array.ndim else 0} rows for {sum(rows)} input rows of "
                f"{len(job)} files: its rows are not the inputs', so files cannot share a job (--batch-size 1)",
            )  # fmt: skip
    bounds = np.cumsum([0, *rows])
    return [{name: a[lo:hi] for name, a in outputs.items()} for lo, hi in zip(bounds[:-1], bounds[1:])]


def _file_failure(item: Item, exc: Exception) -> Failure:
    """An input that cannot be read: 100003, naming the problem."""
    name = codes.NAMES[codes.ACL_ERROR_INVALID_FILE]
    return Failure(item.key, codes.ACL_ERROR_INVALID_FILE, name, f"{type(exc).__name__}: {exc}")


def _attempts(
    client: Client, model: str, batch: Plan, job: list[Loaded], retries: int, submit: SubmitOptions, tally: _Tally
) -> bool:
    """Run one job (one item, or items stacked), retrying transient failures; record the outcome
    of each of its items. True when it succeeded."""
    items = [item for item, _ in job]
    failure: Failure | None = None
    for attempt in range(retries + 1):
        started = time.perf_counter()
        try:
            options: SubmitOptions = {**submit, **batch.submit_options(items[0])}
            details = client.submit(model, _stacked(job), **options).details(submit.get("timeout_s"))
            if not details.written:  # by reference, the worker wrote them
                for item, outputs in zip(items, _split(details.outputs, job)):
                    batch.save(item, outputs)
        except JobFailed as exc:
            failure = Failure(items[0].key, exc.code, exc.name, exc.message)
            if exc.code not in codes.TRANSIENT:
                break
        except (JobTimeout, JobNotFound, BrokerConnectionError) as exc:  # JobNotFound: Redis lost it
            failure = Failure(items[0].key, None, type(exc).__name__, str(exc))
        except AclqError as exc:  # refused before sending (a dtype that cannot travel), outputs not written
            failure = Failure(
                items[0].key, getattr(exc, "code", None), getattr(exc, "name", type(exc).__name__), str(exc)
            )
            break
        else:
            tally.done(len(items), (time.perf_counter() - started) * 1000, details.device)
            return True
        if attempt < retries:
            tally.retried()
    assert failure is not None
    tally.failed(items, failure)
    return False


def _conclude(
    summary: Summary, latencies: list[float], devices: Counter[str], elapsed_s: float, done_before: int
) -> None:
    summary.elapsed_s = round(elapsed_s, 3)
    ran = summary.done + summary.failed - done_before  # the probe's items ran before the clock
    summary.items_per_s = round(ran / elapsed_s, 1) if elapsed_s > 0 else 0.0
    if latencies:
        summary.latency_p50_ms = round(statistics.median(latencies), 2)
        summary.latency_p99_ms = round(float(np.percentile(latencies, 99)), 2)
    summary.devices = dict(sorted(devices.items()))
    summary.failures.sort(key=lambda f: f.item)
