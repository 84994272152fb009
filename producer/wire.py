"""Every shape that crosses Redis between producer and worker (docs/wire-format.md): the msgpack
job and result envelopes, the Celery task message that carries job ids, the job states, and the
worker heartbeat. Each has one decoder, which answers malformed data with :class:`WireError`.

Tensors travel as ``{"dtype", "shape", "data"}`` with the raw little-endian, C-order bytes;
encoding copies the bytes once (into the message) and decoding not at all beyond msgpack's
own read (``np.frombuffer`` over the bytes msgpack returns). No pickle, ever.
"""

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Final

import msgpack
import numpy as np

from producer.codes import ACL_ERROR_INVALID_PARAM, ACL_ERROR_STORAGE_OVER_LIMIT, ACL_ERROR_UNSUPPORTED_DATA_TYPE
from producer.errors import WireError

#: version of both envelopes; a worker refuses a job of another version (3: data by reference)
WIRE_VERSION: Final = 3
#: the one task aclq defines (its Celery name)
INFER_TASK: Final = "aclq.infer"
#: an answer up to this size travels in its client's inbox notice too (docs/wire-format.md)
NOTICE_ANSWER_MAX: Final = 64 * 1024
#: an encoded message larger than this is a view of its packer's buffer, not a copy (_pack)
LARGE_MESSAGE_BYTES: Final = 64 * 1024
#: the Celery message header that says how many rows its jobs bring together: how a worker
#: takes no more messages at once than one batch of its rows holds (the claim, producer/transport.py)
#: and runs a message at once whose rows fill a batch (worker/gather.py). A hint only: a message
#: without it counts a row a job.
ROWS_HEADER: Final = "aclq_rows"
#: job priorities: 0 is served first, 9 last (kombu's Redis priority order)
PRIORITIES: Final = range(10)
#: exec options a job may carry, each applied through aclmdlSetExecConfigOpt
EXEC_OPTIONS: Final = ("stream_sync_timeout_ms", "event_sync_timeout_ms")
#: the input name that stands for a one-input model's only input, whatever its name
POSITIONAL: Final = ""
#: most dims a tensor may have
MAX_RANK: Final = 32
#: how a job's outputs may be written where it says (``OutputRef.format``): an archive, or a
#: file per output as ais_bench writes them (producer/storage.py)
OUTPUT_FORMATS: Final = ("npz", "npy", "bin", "txt")
#: a model name as a repository holds it: a directory name that cannot lead out of it
MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

_DTYPES: Final = {
    np.dtype(t).newbyteorder("<").str: np.dtype(t).newbyteorder("<")
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    + ("float16", "float32", "float64", "complex64", "complex128")
}


class JobStatus(str, Enum):
    """A job's state, as its state key holds it (all but NOT_FOUND, which is the key's absence)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by a caller, before its answer (producer.client: Job.cancel)
    NOT_FOUND = "not_found"  # never submitted, or expired

    @property
    def final(self) -> bool:
        """Answered: a worker's claim leaves it as it is and never runs it."""
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)

    @classmethod
    def decode(cls, raw: bytes | None) -> "JobStatus":
        if raw is None:
            return cls.NOT_FOUND
        try:
            status = cls(raw.decode("utf-8", "replace"))
        except ValueError:
            status = cls.NOT_FOUND
        if status is cls.NOT_FOUND:
            raise _invalid(f"job state {raw[:40]!r} is none of {[s.value for s in cls][:-1]}")
        return status


def _invalid(message: str) -> WireError:
    return WireError(ACL_ERROR_INVALID_PARAM, message)


def _strings(values: list[Any], where: str) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise _invalid(f"{where} must be a list of strings")
    return values


def model_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a model (checked by the client before sending and by the worker
    on arrival), or None."""
    if isinstance(name, str) and MODEL_NAME.fullmatch(name) and ".." not in name:
        return None
    hint = "; a version goes in version=N, not after ':'" if isinstance(name, str) and ":" in name else ""
    return f"model name {name!r} is not a valid name ([A-Za-z0-9_.-], no '..'){hint}"


def encode_tensor(array: Any) -> dict[str, Any]:
    a = np.asarray(array)
    if a.dtype.newbyteorder("<").str not in _DTYPES:
        raise WireError(ACL_ERROR_UNSUPPORTED_DATA_TYPE, f"dtype {a.dtype} cannot travel; numeric and bool only")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.asarray(a, order="C")  # keeps 0-d arrays 0-d
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.reshape(-1).view(np.uint8).data}


def decode_tensor(obj: Any, where: str) -> np.ndarray:
    """A read-only array over the message's bytes; every malformation is named with ``where``."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise _invalid(f"{where} must be a map of dtype, shape and data")
    dtype = _DTYPES.get(obj["dtype"]) if isinstance(obj["dtype"], str) else None
    if dtype is None:
        raise WireError(ACL_ERROR_UNSUPPORTED_DATA_TYPE, f"{where} has dtype {obj['dtype']!r}; numeric and bool only")
    shape = obj["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(type(d) is int and d >= 0 for d in shape):
        raise _invalid(f"{where} shape {shape!r} must be a list of at most {MAX_RANK} non-negative ints")
    data = obj["data"]
    if not isinstance(data, bytes):
        raise _invalid(f"{where} data must be bytes, got {type(data).__name__}")
    need = math.prod(shape) * dtype.itemsize
    if need != len(data):
        raise _invalid(f"{where} shape {shape} of {dtype.name} needs {need} bytes, data holds {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def rows_signature(arrays: Mapping[str, np.ndarray]) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """Each array's name, dtype and trailing dims: what arrays must share to be stacked along
    their rows (and what a run's time a row depends on, besides the model)."""
    return tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in arrays.items()))


def leading_rows(inputs: Mapping[str, Any]) -> int:
    """The rows of these inputs when they all share a leading axis; else 0."""
    lengths = {np.shape(a)[0] if np.ndim(a) else -1 for a in inputs.values()}
    return lengths.pop() if len(lengths) == 1 and -1 not in lengths else 0


def _pack(message: dict[str, Any], limit: int) -> bytes | memoryview:
    """The message as msgpack: bytes, or for a large one (LARGE_MESSAGE_BYTES) a view of the
    packer's own buffer. ``packb`` copies the packed bytes once more into a new ``bytes``: 137 us
    against 62 for a 1 MiB tensor here, on the critical path of every large job on both sides."""
    packer = msgpack.Packer(autoreset=False, use_bin_type=True)
    packer.pack(message)
    packed = packer.getbuffer()
    if len(packed) > limit:
        raise WireError(ACL_ERROR_STORAGE_OVER_LIMIT, f"message of {len(packed)} bytes exceeds the {limit}-byte limit")
    return packed if len(packed) > LARGE_MESSAGE_BYTES else bytes(packed)


def _unpack(data: bytes, limit: int, what: str) -> dict[str, Any]:
    if len(data) > limit:
        raise WireError(ACL_ERROR_STORAGE_OVER_LIMIT, f"{what} of {len(data)} bytes exceeds the {limit}-byte limit")
    try:
        message = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated classes for corrupt input
        raise _invalid(f"{what} is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(message, dict):
        raise _invalid(f"{what} must be a msgpack map, got {type(message).__name__}")
    if message.get("version") != WIRE_VERSION:
        raise _invalid(f"{what} has wire version {message.get('version')!r}; this side speaks {WIRE_VERSION}")
    return message


class _Fields:
    """Typed reads of an unpacked map, naming the field on error."""

    def __init__(self, message: dict[str, Any], what: str) -> None:
        self._message, self._what = message, what

    def get(self, name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        value = self._message.get(name)
        if value is None and optional:
            return None
        numeric_bool = isinstance(value, bool) and kind is not bool  # True is an int to Python, not here
        if not isinstance(value, kind) or numeric_bool:
            raise _invalid(f"{self._what} field {name!r} must be {getattr(kind, '__name__', kind)}, got {value!r:.80}")
        return value

    def refs(self, name: str) -> "dict[str, InputRef]":
        value = self.get(name, dict, optional=True) or {}
        if not all(isinstance(k, str) for k in value):
            raise _invalid(f"{self._what} field {name!r} must map names to references")
        return {k: InputRef.decode(v, f"input reference {k!r}") for k, v in value.items()}

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        value = self.get(name, dict)
        if not all(isinstance(k, str) for k in value):
            raise _invalid(f"{self._what} field {name!r} must map names to tensors")
        return {k: decode_tensor(v, f"{name[:-1]} {k!r}") for k, v in value.items()}


@dataclass(frozen=True)
class InputRef:
    """An input the worker reads where it lies: a .npy or .npz file, by local path or URL
    (``s3://…``, any fsspec scheme); ``rows``: [start, stop) of its leading axis, else all of
    it; ``key``: the array of an .npz (default: its only one)."""

    url: str
    rows: tuple[int, int] | None = None
    key: str | None = None

    def encode(self) -> dict[str, Any]:
        return {"url": self.url, "rows": list(self.rows) if self.rows is not None else None, "key": self.key}

    @classmethod
    def decode(cls, obj: Any, where: str) -> "InputRef":
        if not isinstance(obj, dict) or set(obj) != {"url", "rows", "key"}:
            raise _invalid(f"{where} must be a map of url, rows and key")
        f = _Fields(obj, where)
        rows = f.get("rows", list, optional=True)
        if rows is not None and not (len(rows) == 2 and all(type(n) is int for n in rows) and 0 <= rows[0] <= rows[1]):
            raise _invalid(f"{where} rows {rows!r} must be [start, stop] with 0 <= start <= stop")
        return cls(
            f.get("url", str), (rows[0], rows[1]) if rows is not None else None, f.get("key", str, optional=True)
        )


@dataclass(frozen=True)
class OutputRef:
    """Where the worker writes a job's outputs itself, answering with their locations only:
    ``<url>.npz``, or ``<url>_<i>.<format>`` per output (a local path or an fsspec URL)."""

    url: str
    format: str = "npz"

    def encode(self) -> dict[str, Any]:
        return {"url": self.url, "format": self.format}

    @classmethod
    def decode(cls, obj: Any, where: str) -> "OutputRef":
        if not isinstance(obj, dict) or set(obj) != {"url", "format"}:
            raise _invalid(f"{where} must be a map of url and format")
        f = _Fields(obj, where)
        out = cls(f.get("url", str), f.get("format", str))
        if out.format not in OUTPUT_FORMATS:
            raise _invalid(f"{where} format {out.format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
        return out


def _output_ref(obj: dict[str, Any] | None) -> OutputRef | None:
    return OutputRef.decode(obj, "job field 'output_to'") if obj is not None else None


@dataclass(frozen=True)
class JobEnvelope:
    """One inference job. ``deadline`` and ``enqueued_at`` are Unix times in seconds. Inputs
    travel in ``inputs``, or by reference in ``input_refs`` (read by the worker); outputs come
    back in the answer, or are written by the worker at ``output_to``. ``split_rows``: the
    caller's word that the inputs' rows are independent (each output row depends on its input
    row only), so the worker may execute them in runs of the size it finds fastest and join the
    outputs."""

    job_id: str
    model: str
    inputs: Mapping[str, np.ndarray]
    model_version: int | None = None
    output_names: tuple[str, ...] | None = None
    options: Mapping[str, int] = field(default_factory=dict)
    device: int | None = None
    host: str | None = None
    priority: int = 0
    deadline: float | None = None
    reply_key: str = ""
    enqueued_at: float = field(default_factory=time.time)
    input_refs: Mapping[str, InputRef] = field(default_factory=dict)
    output_to: OutputRef | None = None
    split_rows: bool = False
    notify_key: str | None = None
    #: where an answer over NOTICE_ANSWER_MAX goes as a string, an empty element in the reply
    #: list saying so (producer/keys.py); None: the answer goes in the reply list, whatever its size
    large_reply_key: str | None = None

    @property
    def rows(self) -> int:
        """The rows this job brings: the first dim its inputs share, a reference's row range
        counted, else 1 (a whole file by reference: its rows are not known here)."""
        lengths = [leading_rows(self.inputs)] if self.inputs else []
        lengths += [at.rows[1] - at.rows[0] if at.rows is not None else 0 for at in self.input_refs.values()]
        return max(lengths[0], 1) if len(set(lengths)) == 1 else 1

    def encode(self, limit: int) -> bytes | memoryview:
        return _pack(
            {
                "version": WIRE_VERSION,
                "job_id": self.job_id,
                "model": self.model,
                "model_version": self.model_version,
                "inputs": {name: encode_tensor(a) for name, a in self.inputs.items()},
                "output_names": list(self.output_names) if self.output_names is not None else None,
                "options": dict(self.options),
                "device": self.device,
                "host": self.host,
                "priority": self.priority,
                "deadline": self.deadline,
                "reply_key": self.reply_key,
                "enqueued_at": self.enqueued_at,
                "input_refs": {name: ref.encode() for name, ref in self.input_refs.items()},
                "output_to": self.output_to.encode() if self.output_to is not None else None,
                "split_rows": self.split_rows,
                "notify_key": self.notify_key,
                "large_reply_key": self.large_reply_key,
            },
            limit,
        )

    @classmethod
    def decode(cls, data: bytes, limit: int) -> "JobEnvelope":
        f = _Fields(_unpack(data, limit, "job"), "job")
        options = f.get("options", dict)
        unknown = sorted(set(options) - set(EXEC_OPTIONS), key=str)
        if unknown:
            raise _invalid(f"unknown exec options {unknown}; supported: {list(EXEC_OPTIONS)}")
        output_names = f.get("output_names", list, optional=True)
        if output_names is not None and not all(isinstance(n, str) for n in output_names):
            raise _invalid("job field 'output_names' must be a list of names")
        return cls(
            job_id=f.get("job_id", str),
            model=f.get("model", str),
            inputs=f.tensors("inputs"),
            model_version=f.get("model_version", int, optional=True),
            output_names=tuple(output_names) if output_names is not None else None,
            options=options,
            device=f.get("device", int, optional=True),
            host=f.get("host", str, optional=True),
            priority=f.get("priority", int),
            deadline=f.get("deadline", (int, float), optional=True),
            reply_key=f.get("reply_key", str),
            enqueued_at=f.get("enqueued_at", (int, float)),
            input_refs=f.refs("input_refs"),
            output_to=_output_ref(f.get("output_to", dict, optional=True)),
            split_rows=f.get("split_rows", bool, optional=True) or False,
            notify_key=f.get("notify_key", str, optional=True),
            large_reply_key=f.get("large_reply_key", str, optional=True),
        )


@dataclass(frozen=True)
class ErrorInfo:
    """An ACL error as it travels: code and name are ACL's."""

    code: int
    name: str
    message: str


class ResultStatus(str, Enum):
    """How a job ended, as its result envelope says."""

    OK = "ok"  #: outputs
    ERROR = "error"  #: an ACL error, in ``error``
    CANCELLED = "cancelled"  #: cancelled by a caller before its answer; written by the client


@dataclass(frozen=True)
class ResultEnvelope:
    """The answer to one job: outputs, or an error; timings in milliseconds."""

    job_id: str
    status: str  #: a ResultStatus: ok, error, or cancelled
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    error: ErrorInfo | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    device: int | None = None
    worker: str = ""
    attempt: int = 1  #: 2 or more when the job was redelivered after its worker was lost
    batch_jobs: int = 1  #: jobs executed together with this one (dynamic batching), itself included
    #: where the worker wrote the outputs (a job with ``output_to``), in output order; then
    #: ``outputs`` is empty
    written: tuple[str, ...] = ()

    def encode(self, limit: int) -> bytes | memoryview:
        error = None if self.error is None else vars(self.error)
        return _pack(
            {
                "version": WIRE_VERSION,
                "job_id": self.job_id,
                "status": self.status,
                "outputs": {name: encode_tensor(a) for name, a in self.outputs.items()},
                "error": error,
                "timings": dict(self.timings),
                "device": self.device,
                "worker": self.worker,
                "attempt": self.attempt,
                "batch_jobs": self.batch_jobs,
                "written": list(self.written),
            },
            limit,
        )

    @classmethod
    def decode(cls, data: bytes, limit: int) -> "ResultEnvelope":
        f = _Fields(_unpack(data, limit, "result"), "result")
        error_map = f.get("error", dict, optional=True)
        error = None
        if error_map is not None:  # read like any field, so a malformed error is a WireError too
            e = _Fields(error_map, "result error")
            error = ErrorInfo(e.get("code", int), e.get("name", str), e.get("message", str))
        return cls(
            job_id=f.get("job_id", str),
            status=f.get("status", str),
            outputs=f.tensors("outputs"),
            error=error,
            timings=f.get("timings", dict),
            device=f.get("device", int, optional=True),
            worker=f.get("worker", str),
            attempt=f.get("attempt", int),
            batch_jobs=f.get("batch_jobs", int),
            written=tuple(_strings(f.get("written", list, optional=True) or [], "result field 'written'")),
        )


@dataclass(frozen=True)
class TaskMessage:
    """The Celery message of the infer task (protocol 2, msgpack body): ``args=[[job ids]]`` and
    ``kwargs={"model": name, "inline": [envelope or None per job]}``. A small job's envelope
    travels in ``inline`` (its bytes as they are: msgpack, no base64); a large one's waits under
    keys.job_input (None in its place; ``inline`` is left out when no job is inline). The model
    is named so that a worker knows whether to gather the message for a batch."""

    job_ids: tuple[str, ...]
    model: str
    inline: tuple[bytes | None, ...] = ()  #: per job; () when none is inline
    #: the rows of its jobs together (ROWS_HEADER); 0: not said
    rows: int = 0

    def args(self) -> list[list[str]]:
        return [list(self.job_ids)]

    def kwargs(self) -> dict[str, Any]:
        if not any(self.inline):
            return {"model": self.model}
        return {"model": self.model, "inline": list(self.inline)}

    def payloads(self) -> list[tuple[str, bytes | None]]:
        """Each job id with its inline envelope, or None where it waits under keys.job_input."""
        return list(zip(self.job_ids, self.inline or [None] * len(self.job_ids), strict=True))

    def celery_message(self, task_id: str, origin: str) -> tuple[dict[str, Any], bytes]:
        """Celery protocol 2's headers and body for this message, as Celery's ``send_task``
        would write them (the worker is a Celery worker), without its per-call cost."""
        headers: dict[str, Any] = {
            "lang": "py", "task": INFER_TASK, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
            "parent_id": None, "argsrepr": repr(list(self.job_ids)), "kwargsrepr": repr({"model": self.model}),
            "origin": origin, "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        }  # fmt: skip
        if self.rows > 0:
            headers[ROWS_HEADER] = self.rows
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        body: bytes = msgpack.packb([self.args(), self.kwargs(), embed], use_bin_type=True)
        return headers, body

    @classmethod
    def decode(cls, args: Any, kwargs: Any) -> "TaskMessage":
        ids = args[0] if isinstance(args, list | tuple) and len(args) == 1 else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise _invalid(f"task args must be [[job ids]], got {args!r:.80}")
        model = kwargs.get("model") if isinstance(kwargs, dict) else None
        if not isinstance(model, str) or set(kwargs) - {"model", "inline"}:
            raise _invalid(f"task kwargs must be {{'model': name[, 'inline': [...]]}}, got {kwargs!r:.80}")
        inline = kwargs.get("inline", [])
        if "inline" in kwargs and (
            not isinstance(inline, list)
            or len(inline) != len(ids)
            or not all(p is None or isinstance(p, bytes) for p in inline)
        ):
            raise _invalid(f"task kwarg 'inline' must hold an envelope or None per job, got {inline!r:.80}")
        return cls(tuple(ids), model, tuple(inline))

    @staticmethod
    def rows_of(headers: Mapping[str, Any], jobs: int) -> int:
        """The rows a delivered message's header says its jobs bring, or one a job where it
        says none (a sender that predates the header, or not aclq)."""
        rows = headers.get(ROWS_HEADER)
        return rows if type(rows) is int and rows > 0 else jobs

    @classmethod
    def from_body(cls, body: Any) -> "TaskMessage":
        """From a decoded Celery protocol-2 body, ``[args, kwargs, embed]``."""
        if not isinstance(body, list | tuple) or len(body) != 3:
            raise _invalid(f"task body must be [args, kwargs, embed], got {body!r:.80}")
        return cls.decode(body[0], body[1])


def _names_field(value: str) -> tuple[str, ...]:
    return tuple(filter(None, value.split(",")))


def _flag_field(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError(value)
    return value == "1"


#: how each type of heartbeat field is read back from its Redis string
_BEAT_FIELD_PARSERS: Final[dict[object, Any]] = {
    str: str,
    int: int,
    float: float,
    bool: _flag_field,
    tuple[str, ...]: _names_field,
}


@dataclass(frozen=True)
class WorkerBeat:
    """A worker's heartbeat, a Redis hash under keys.worker_heartbeat renewed every few seconds:
    liveness is the key's existence, readiness ``ready``. Lists travel comma-joined."""

    name: str  #: host/deviceN/pidP
    host: str
    device: int  #: ACLQ_DEVICE: the host's numbering
    runtime_device: int  #: the id this process's runtime gives it
    provider: str
    pid: int
    queues: tuple[str, ...]
    ready: bool  #: models warmed up, consuming
    started_at: float
    done: int
    failed: int
    done_recent: int  #: answered ok in the last recent_s seconds
    failed_recent: int
    recent_s: float
    last_job_at: float  #: Unix time; 0 before the first job
    models: tuple[str, ...]  #: loaded, as name:version
    broken: tuple[str, ...]  #: versions whose file failed to load, as name:version (the next one serves)
    memory_in_use: int  #: device bytes
    memory_total: int

    def to_fields(self) -> dict[str, str | int | float]:
        out: dict[str, str | int | float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                ",".join(value) if isinstance(value, tuple) else int(value) if isinstance(value, bool) else value
            )
        return out

    @classmethod
    def decode(cls, raw: Mapping[bytes, bytes]) -> "WorkerBeat":
        text = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in text:
                raise _invalid(f"heartbeat lacks field {f.name!r}")
            value = text[f.name]
            parse = _BEAT_FIELD_PARSERS[f.type]
            try:
                values[f.name] = parse(value)
            except ValueError:
                kind = getattr(f.type, "__name__", str(f.type))
                raise _invalid(f"heartbeat field {f.name!r} must be {kind}, got {value!r:.40}") from None
        return cls(**values)
