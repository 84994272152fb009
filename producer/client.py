"""The client: submit jobs, wait for results.

``Client`` and ``AsyncClient`` share every decision (httpx's sans-I/O pattern): what to enqueue,
when to roll an enqueue back, how long to wait and when a job counts as lost are written once,
as generators in :class:`_Core` that yield the Redis round trips they need (:class:`_Redis`), or a
wait for a job's notice in the client's inbox (:class:`_Notice`), and receive their replies. Each
client only drives them: one loop over a blocking Redis client and a reader thread, one over an
asyncio one and a reader task. Celery's message for a job is written by the core too
(:meth:`_Core.message`), so enqueueing is Redis commands only.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict, TypeVar, Unpack

import numpy as np
import redis
import redis.asyncio

from producer import keys
from producer.codes import ACL_ERROR_INVALID_PARAM
from producer.connection import async_redis_client, async_round_trip, redis_client, round_trip
from producer.entries import message_entry, ring
from producer.errors import (
    BrokerError,
    ConfigError,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobTimeout,
    ResultTaken,
    WireError,
    broker_error,
)
from producer.settings import Settings
from producer.wire import (
    EXEC_OPTIONS,
    PRIORITIES,
    InputRef,
    JobEnvelope,
    JobStatus,
    OutputRef,
    ResultEnvelope,
    ResultStatus,
    TaskMessage,
    model_name_problem,
)

log = logging.getLogger(__name__)


class SubmitOptions(TypedDict, total=False):
    """What a job may carry besides its model and inputs."""

    version: int | None  #: model version; None = the highest
    options: Mapping[str, int] | None  #: exec options: stream_sync_timeout_ms, event_sync_timeout_ms
    output_names: Iterable[str] | None  #: None = every output
    device: int | None  #: run on this device (of any host, unless ``host`` is given)
    host: str | None  #: with ``device``: that device of that host
    priority: int  #: 0 (first) .. 9 (last); default 0
    timeout_s: float | None  #: seconds after which the job is answered 107020 instead of run
    job_id: str | None  #: an id of the caller's; an existing one returns that job
    #: where the worker writes the outputs itself (a local path or URL, less the suffix; an
    #: OutputRef for another format): the result then carries ``written``, not ``outputs``
    output_to: "str | OutputRef | None"
    #: the inputs' rows are independent: the worker may execute a large job in runs of the size
    #: it finds the model fastest at, and join the outputs (docs/wire-format.md)
    split_rows: bool


#: longest single blocking wait for a result; between two, the client checks that the job still
#: exists, so a job whose records were lost (Redis restarted without persistence) ends in
#: JobNotFound within about this long instead of a wait that never ends
WAIT_SLICE_S = 1.0
#: ids of answered jobs kept for waits that start after their job's notice came (bounded: a
#: client that submits without waiting would otherwise keep every id)
NOTICES_KEPT = 4096
#: notices one read of the inbox takes at most
INBOX_READ_MAX = 512
#: first pause of the inbox's reader after a failed read (Redis restarting), doubled up to
#: WAIT_SLICE_S while it fails: a restart is over in a fraction of a second
READER_RETRY_S = 0.05


Outputs = dict[str, np.ndarray]
T = TypeVar("T")

# Cancel a job unless it is answered: its state becomes cancelled, its reply a cancelled result
# (what its waiter reads), its payload goes. Atomic against the worker's finish script, which
# moves an answer into place only where the state is not final: whichever runs first wins.
# A job that was running is announced on the cancels channel, for its worker to abort it.
# KEYS: state, reply, input, cancels channel. ARGV: the cancelled result envelope, result TTL,
# the states cancelled and running, then every final state, then the job id. Returns the state
# the job ends in, nil when it does not exist.
_CANCEL = """
local state = redis.call('GET', KEYS[1])
if not state then return false end
for j = 5, #ARGV - 1 do
  if state == ARGV[j] then return state end
end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
if state == ARGV[4] then redis.call('PUBLISH', KEYS[4], ARGV[#ARGV]) end
return ARGV[3]
"""


#: a Redis command as its raw arguments, name first: ``("SET", key, value, "NX", "EX", ttl)``
_Command = tuple[Any, ...]


@dataclass(frozen=True)
class _Notice:
    """A wait for a job's answer through the client's inbox (:class:`_Inbox`), for at most
    ``wait_s``; the reply is the answer's bytes, or None (none came: look at the job)."""

    job_id: str
    wait_s: float


class _Wake:
    """A threading.Event for one waiting thread, over a bare lock that the waiter blocks on and
    ``set`` releases; a wait that returns True takes the wake-up (it is cleared again). An
    Event's condition costs each wake-up a second lock handoff (the woken thread takes the
    condition's lock back from the one that set it) and a lock allocated a wait: ~20 % more CPU
    a wake-up (docs/performance.md), paid twice by a job that a thread submits and waits for."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held: not set

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # set already: released, not held
            self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        # as an Event's: None waits for ever, a timeout of 0 or less not at all (a lock's
        # acquire refuses a negative one)
        return self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))

    def clear(self) -> None:
        self._lock.acquire(blocking=False)


@dataclass
class _Slot:
    """One wait through the inbox: woken (``wake``, the client's kind of event) with ``data``."""

    wake: Any
    data: bytes | None = None


class _Inbox:
    """A client's inbox: jobs it submits while others of its jobs are waited for carry the
    inbox's key, and their workers push each one's id (and its answer, where small) there once
    the answer is in place. One reader takes them, reads the answers that did not come along in
    one round trip and wakes their waits: no blocked connection and no round trip per waiting
    caller. Used under the client's lock."""

    def __init__(self, key: str) -> None:
        self.key = key
        #: the server refuses the reader's BLMPOP (Redis before 7.0, or an ACL): every wait
        #: reads its own reply, and no job names this inbox
        self.refused = False
        #: its reader (the client's kind: a thread, or an asyncio task), from the first wait
        #: through it on: a client whose callers wait one job at a time runs none
        self.reader: Any = None
        self.waits: dict[str, list[_Slot]] = {}
        #: ids noticed while nobody waited for them (a wait that starts later looks at once)
        self.noticed: OrderedDict[str, None] = OrderedDict()
        #: ids whose answers came in their notices and were handed to their waits: the reader
        #: takes their replies out of Redis in its next round trip (a result is delivered once)
        self.handed: list[str] = []

    def wait(self, job_id: str, slot: _Slot) -> bool:
        """Register a wait; False when the job's notice came already (look at its reply now)."""
        if job_id in self.noticed:
            del self.noticed[job_id]
            return False
        self.waits.setdefault(job_id, []).append(slot)
        return True

    def end(self, job_id: str, slot: _Slot) -> None:
        """A wait is over (answered, or its slice ended)."""
        slots = self.waits.get(job_id, [])
        if slot in slots:
            slots.remove(slot)
        if not slots:
            self.waits.pop(job_id, None)

    def notice(self, notices: list[tuple[str, bytes]]) -> list[str]:
        """Notices read from the inbox, (job id, answer or b""): the answers given are handed to
        their waits; the ids waited for whose answers are still to read; the rest are kept."""
        unread = []
        for job_id, data in notices:
            if job_id not in self.waits:
                self.noticed[job_id] = None
            elif data:
                self.answer(job_id, data)
                self.handed.append(job_id)
            else:
                unread.append(job_id)
        while len(self.noticed) > NOTICES_KEPT:
            self.noticed.popitem(last=False)
        return unread

    def answer(self, job_id: str, data: bytes | None) -> None:
        """A job's answer as read: every wait for it gets it and is woken."""
        for slot in self.waits.pop(job_id, []):
            slot.data = data
            slot.wake.set()


class _Sent(NamedTuple):
    """A job enqueued: its id, whether this call created it, whether it names the inbox."""

    job_id: str
    new: bool
    notified: bool


@dataclass(frozen=True)
class _Redis:
    """I/O a core step needs: Redis commands sent in one round trip (a MULTI when
    ``transaction``); the reply is the list of their replies, Redis' own (``SET`` answers
    ``b"OK"``), the same from both clients (producer.connection's round trips)."""

    commands: tuple[_Command, ...]
    transaction: bool = True


_Steps = Generator["_Redis | _Notice", Any, T]


@dataclass(frozen=True)
class _Prepared:
    """A job checked and encoded: its envelope, and the envelope's bytes."""

    job: JobEnvelope
    payload: bytes | memoryview

    def sent(self) -> "_Sent":
        return _Sent(self.job.job_id, True, self.job.notify_key is not None)


@dataclass
class _Pending:
    """A ``submit`` waiting for its job to be sent with those of concurrent ``submit``s."""

    prepared: _Prepared
    #: a :class:`_Wake` or an asyncio.Event, the client's kind: set when its send ended, or
    #: when this caller is the next to send (each caller is woken alone: no herd to wake)
    wake: Any
    sent: bool = False  #: its send ended, with ``error`` or without
    error: BaseException | None = None

    def result(self) -> _Sent:
        """The job as sent; the send's error if it failed."""
        if self.error is not None:
            raise self.error
        return self.prepared.sent()


class _Coalescing:
    """Concurrent ``submit``s of one client, sent together (group commit): the first sends its
    job at once, alone; those that arrive while a send is on its way wait for it, and the first
    of them then sends them all, in one round trip, sharing messages where :meth:`_Core.coalesce`
    lets them. A lone ``submit`` waits for nobody. Kept by each client with its own lock."""

    def __init__(self) -> None:
        self.waiting: list[_Pending] = []
        self.sending = False

    def take(self, pending: _Pending) -> list[_Pending]:
        """Under the client's lock: the jobs for this caller to send now, or [] to wait (its job
        is sent, or another send is on its way)."""
        if pending.sent or self.sending:
            return []
        self.sending = True
        batch, self.waiting = self.waiting, []
        return batch

    def end(self, batch: list[_Pending], error: BaseException | None) -> list[_Pending]:
        """Under the client's lock: the send of ``batch`` ended. The callers to wake: those of
        ``batch``, and the first that arrived meanwhile, which sends the rest next."""
        for pending in batch:
            pending.error, pending.sent = error, True
        self.sending = False
        return batch + self.waiting[:1]

    def leave(self, pending: _Pending) -> list[_Pending]:
        """Under the client's lock: a waiting caller gave up (cancelled, interrupted); its job is
        not sent. The caller to wake in its place if it may have been the one woken to send next."""
        if pending in self.waiting:
            self.waiting.remove(pending)
        return self.waiting[:1] if not self.sending else []


class _Core:
    """Everything both clients decide, without I/O: envelopes, keys, routing, and the steps of
    enqueueing, waiting and looking, as generators of the I/O they need."""

    def __init__(self, settings: Settings | str | None) -> None:
        if settings is None:
            settings = Settings.from_env()
        elif isinstance(settings, str):
            settings = Settings.from_env(redis_url=settings)
        self.settings = settings
        self.url = settings.require_url()
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"  # Celery's origin header for a client
        #: the inbox of this client's jobs: None until its first wait (a client that never
        #: waits has no inbox filling up); a new one in a forked child (:meth:`inbox_for`)
        self.inbox: _Inbox | None = None
        self._inbox_pid = 0
        #: waits in progress: a job submitted while others are waited for names the inbox; one
        #: submitted with none (one caller, one job at a time) is waited for by its own
        #: ``BLPOP``, which wakes that caller directly, a hop sooner than a reader can
        self.waits = 0

    def inbox_for(self, pid: int) -> _Inbox:
        """The inbox of this process (a fresh one after a fork: the parent's is its reader's)."""
        if self.inbox is None or self._inbox_pid != pid:
            self.inbox, self._inbox_pid = _Inbox(keys.client_inbox(self.settings.namespace, uuid.uuid4().hex)), pid
        return self.inbox

    def envelope(self, model: str, inputs: Mapping[str, Any], options: SubmitOptions) -> JobEnvelope:
        device, host = options.get("device"), options.get("host")
        priority, exec_options = options.get("priority", 0), dict(options.get("options") or {})
        unknown_keywords = set(options) - set(SubmitOptions.__annotations__)
        if unknown_keywords:
            raise ConfigError(f"unknown submit options {sorted(unknown_keywords)}")
        if host is not None and device is None:
            raise ConfigError(f"host {host!r} needs a device: a job targets device N of host H")
        problem = model_name_problem(model)
        if problem:  # the worker would refuse it: say so before anything is sent
            raise WireError(ACL_ERROR_INVALID_PARAM, problem)
        if priority not in PRIORITIES:
            raise ConfigError(f"priority {priority!r} must be 0 (first) .. 9 (last)")
        unknown = set(exec_options) - set(EXEC_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown exec options {sorted(unknown)}; supported: {list(EXEC_OPTIONS)}")
        output_names, timeout_s = options.get("output_names"), options.get("timeout_s")
        job_id = options.get("job_id") or uuid.uuid4().hex
        output_to, split_rows = options.get("output_to"), options.get("split_rows", False)
        if type(split_rows) is not bool:
            raise ConfigError(f"split_rows {split_rows!r} must be True or False")
        now = time.time()
        return JobEnvelope(
            job_id=job_id,
            model=model,
            inputs={name: value for name, value in inputs.items() if not isinstance(value, InputRef)},
            input_refs={name: value for name, value in inputs.items() if isinstance(value, InputRef)},
            output_to=OutputRef(output_to) if isinstance(output_to, str) else output_to,
            model_version=options.get("version"),
            output_names=tuple(output_names) if output_names is not None else None,
            options=exec_options,
            device=device,
            host=host,
            priority=priority,
            deadline=now + timeout_s if timeout_s is not None else None,
            reply_key=keys.job_reply(self.settings.namespace, job_id),
            large_reply_key=keys.job_out(self.settings.namespace, job_id),
            enqueued_at=now,
            split_rows=split_rows,
            notify_key=self.inbox.key if self.inbox is not None and not self.inbox.refused and self.waits else None,
        )

    def prepare(self, model: str, inputs: Mapping[str, Any], options: SubmitOptions) -> "_Prepared":
        """A job checked and encoded, ready to enqueue: every error of its own is raised here."""
        job = self.envelope(model, inputs, options)
        return _Prepared(job, job.encode(self.settings.max_message_bytes))

    def enqueue(self, model: str, many: list[Mapping[str, Any]], options: SubmitOptions) -> _Steps[list[_Sent]]:
        """Enqueue jobs with one Celery message; each job as :class:`_Sent` (not new: a caller's
        ``job_id`` that existed already). Jobs with fresh ids go in one
        transaction (:meth:`enqueue_fresh`). A caller's id is reserved first, and the message
        sent only when it was free."""
        jobs = [self.prepare(model, inputs, options) for inputs in many]
        if not jobs:
            return []
        if options.get("job_id") is None:  # fresh ids: none can be taken
            yield from self.enqueue_fresh([jobs])
            return [p.sent() for p in jobs]
        (prepared,) = jobs
        records = self._records(jobs)
        replies = yield _Redis(tuple(records))
        if not all(replies):  # the id exists: drop whatever of ours was set beside it
            strays = [key for (_, key, *_), done in zip(records, replies, strict=True) if done]
            if strays:
                yield _Redis((("DEL", *strays),))
            return [_Sent(prepared.job.job_id, False, False)]
        try:
            yield _Redis(self.message(jobs), transaction=False)
        except BrokerError:  # not sent: free the id, so that a retry can enqueue it
            yield _Redis((("DEL", *(key for _, key, *_ in records)),))
            raise
        return [prepared.sent()]

    def enqueue_fresh(self, messages: list[list["_Prepared"]]) -> _Steps[None]:
        """Jobs with fresh ids, one Celery message per list, in one transaction: their states,
        the payloads too large to travel inline, the messages and their doorbell tokens."""
        commands: list[_Command] = []
        for jobs in messages:
            commands += [*self._records(jobs), *self.message(jobs)]
        yield _Redis(tuple(commands))

    def coalesce(self, jobs: list["_Prepared"]) -> list[list["_Prepared"]]:
        """Jobs of concurrent ``submit``s as messages: those bound for the same queue with the
        same model and priority share one, up to ``coalesce_max_jobs`` jobs a message."""
        by_message: dict[tuple[Any, ...], list[_Prepared]] = {}
        for prepared in jobs:
            job = prepared.job
            by_message.setdefault((job.model, job.device, job.host, job.priority), []).append(prepared)
        size = max(1, self.settings.coalesce_max_jobs)
        return [group[i : i + size] for group in by_message.values() for i in range(0, len(group), size)]

    def _inline(self, prepared: "_Prepared") -> bytes | None:
        """The job's payload where it travels inside its message, None where by claim check."""
        if len(prepared.payload) > self.settings.inline_max_bytes:
            return None
        return bytes(prepared.payload)  # already bytes up to wire.LARGE_MESSAGE_BYTES: no copy

    def _records(self, jobs: list["_Prepared"]) -> list[_Command]:
        """What makes the jobs exist: each one's state, and its payload where not inline. No
        Lua: a payload passed through a script costs a megabyte's copy into Lua and back."""
        ns, ttl = self.settings.namespace, self.settings.payload_ttl_s
        records: list[_Command] = []
        for prepared in jobs:
            job_id = prepared.job.job_id
            records.append(("SET", keys.job_state(ns, job_id), JobStatus.QUEUED.value, "NX", "EX", ttl))
            if self._inline(prepared) is None:
                records.append(("SET", keys.job_input(ns, job_id), prepared.payload, "NX", "EX", ttl))
        return records

    def message(self, jobs: list["_Prepared"]) -> tuple[_Command, ...]:
        """The commands that send one Celery message for ``jobs`` (which share their model, queue
        and priority) and ring its queue's doorbell. The message is written as Celery's
        ``send_task`` through aclq's transport would write it, for a tenth of its cost
        (docs/performance.md); it names the model and its jobs' rows, so that a worker knows
        whether to gather it with others for a batch, and how many such messages one batch holds."""
        ns, first = self.settings.namespace, jobs[0].job
        if first.device is None:
            name = keys.shared_queue(ns)
        elif first.host is None:
            name = keys.device_queue(ns, first.device)
        else:
            name = keys.host_device_queue(ns, first.host, first.device)
        inline = tuple(self._inline(prepared) for prepared in jobs)
        task = TaskMessage(
            tuple(p.job.job_id for p in jobs), first.model, inline if any(inline) else (), sum(p.job.rows for p in jobs)
        )
        headers, body = task.celery_message(str(uuid.uuid4()), self._origin)
        entry = message_entry(name, first.priority, headers, body)
        return (
            ("LPUSH", keys.queue_key(name, first.priority), entry),
            *ring(name),
        )

    def result(self, job_id: str, timeout_s: float | None, known: bool, notified: bool) -> _Steps[ResultEnvelope]:
        """Wait for a job's result envelope in slices of at most WAIT_SLICE_S, looking between
        them that the job still exists; ``known``: it surely exists (just enqueued by this
        client), so the first wait blocks at once; ``notified``: its answer's notice comes to
        this client's inbox, whose reader wakes the wait. The wait that reads the result takes
        it out of Redis (a result is delivered once). The envelope as answered: an error or
        cancelled one too (:func:`outcome` raises for those)."""
        ns, limit = self.settings.namespace, self.settings.max_message_bytes
        reply_key, out_key = keys.job_reply(ns, job_id), keys.job_out(ns, job_id)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        data = None if known else (yield from self._look(job_id))
        while data is None:
            if deadline is None:
                wait_s = WAIT_SLICE_S
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobTimeout(f"job {job_id} gave no result within {timeout_s} s")
                wait_s = min(WAIT_SLICE_S, left)
            if notified and self.inbox is not None and not self.inbox.refused:
                data = yield _Notice(job_id, wait_s)
            else:
                # GETDEL runs once BLPOP returns: a large answer comes in the same round trip
                popped, large = yield _Redis((("BLPOP", reply_key, wait_s), ("GETDEL", out_key)), transaction=False)
                data = _reply(popped[1] if popped else None, large)
            if data is None:
                data = yield from self._look(job_id)
        return ResultEnvelope.decode(data, limit)

    def cancel(self, job_id: str) -> _Steps[bool]:
        """Cancel a job that is not answered yet; whether it ends cancelled (False: its answer
        came first). JobNotFound when there is no such job."""
        ns, ttl = self.settings.namespace, self.settings.result_ttl_s
        cancelled = ResultEnvelope(job_id, ResultStatus.CANCELLED.value).encode(self.settings.max_message_bytes)
        finals = [s.value for s in JobStatus if s.final]
        job_keys = (
            keys.job_state(ns, job_id), keys.job_reply(ns, job_id), keys.job_input(ns, job_id), keys.job_cancels(ns)
        )  # fmt: skip
        args = (cancelled, ttl, JobStatus.CANCELLED.value, JobStatus.RUNNING.value, *finals, job_id)
        (ended,) = yield _Redis((("EVAL", _CANCEL, len(job_keys), *job_keys, *args),), transaction=False)
        if ended is None:
            raise JobNotFound(f"no job {job_id} to cancel: never submitted, or expired")
        return ended == JobStatus.CANCELLED.value.encode()  # type: ignore[no-any-return]

    def read_inbox(self, inbox: _Inbox, guard: AbstractContextManager[Any]) -> _Steps[None]:
        """One read of the inbox (blocking up to WAIT_SLICE_S): its notices' answers handed to
        their waits, those that came without theirs read in one round trip. ``guard``: the
        client's lock over the inbox."""
        # Notices are pushed as pairs (id, answer), so an even count takes whole ones. The
        # replies of the answers the last read handed over go in the same round trip.
        ns = self.settings.namespace
        with guard:
            handed, inbox.handed = inbox.handed, []
        commands: list[_Command] = [("UNLINK", *(keys.job_reply(ns, job_id) for job_id in handed))] if handed else []
        commands.append(("BLMPOP", WAIT_SLICE_S, 1, inbox.key, "LEFT", "COUNT", 2 * INBOX_READ_MAX))
        try:
            *_, popped = yield _Redis(tuple(commands), transaction=False)
        except BrokerError as exc:
            with guard:
                inbox.handed[:0] = handed  # taken at the next read (taking one twice is harmless)
            if type(exc) is not BrokerError:  # unreachable, full, our login refused: tried again
                raise
            # The server refuses the command itself: the waits read their own replies, from now on.
            log.warning("Redis refused BLMPOP (%s): each wait reads its own job's reply", exc)
            with guard:
                inbox.refused = True
                for job_id in list(inbox.waits):
                    inbox.answer(job_id, None)  # woken to look, then to wait by BLPOP
            return
        if not popped:
            return
        items = popped[1]
        with guard:
            waited = inbox.notice([(job_id.decode(), data) for job_id, data in zip(items[0::2], items[1::2])])
        if not waited:
            return
        answers = yield _Redis(tuple(c for job_id in waited for c in self._take(job_id)), False)
        with guard:
            for job_id, data, large in zip(waited, answers[0::2], answers[1::2], strict=True):
                inbox.answer(job_id, _reply(data, large))

    def cancelled(self, job_id: str) -> None:
        """A cancel of this client's ended: its waits for the job look at it now (the canceller
        notices no inbox). Under the client's lock."""
        if self.inbox is not None:
            self.inbox.answer(job_id, None)

    def _look(self, job_id: str) -> _Steps[bytes | None]:
        """The job's reply when it is there (taken), None while it is on its way; JobNotFound
        when neither its reply nor its state exists, ResultTaken when it is answered and its
        reply was read already (JobCancelled when that answer was a cancel)."""
        state_key = keys.job_state(self.settings.namespace, job_id)
        data, large, state = yield _Redis((*self._take(job_id), ("GET", state_key)))
        data = _reply(data, large)
        if data is not None:
            return data
        if state is None:
            raise JobNotFound(
                f"no job {job_id}: never submitted, its result expired, or Redis lost it (restarted, no persistence)"
            )
        status = JobStatus.decode(state)
        if status is JobStatus.CANCELLED:
            raise JobCancelled(job_id)
        if status.final:
            raise ResultTaken(job_id, status.value)
        return None

    def _take(self, job_id: str) -> tuple[_Command, _Command]:
        """The commands that take a job's answer out of Redis, for :func:`_reply`: its reply list's
        element, and its ``out`` string."""
        ns = self.settings.namespace
        return ("LPOP", keys.job_reply(ns, job_id)), ("GETDEL", keys.job_out(ns, job_id))

    def status(self, job_id: str) -> _Steps[JobStatus]:
        (state,) = yield _Redis((("GET", keys.job_state(self.settings.namespace, job_id)),), transaction=False)
        return JobStatus.decode(state)

    @staticmethod
    def map_room(window: int, in_flight: int) -> int:
        """How many jobs ``map`` sends now: none until half the window is free (a chunk shares a
        message and a round trip), then enough to fill it; always some when nothing is in flight."""
        if window < 1:
            raise ConfigError(f"window must be at least 1, got {window}")
        room = window - in_flight
        return room if room >= max(1, window // 2) or not in_flight else 0

    def broker_error(self, exc: Exception) -> BrokerError:
        return broker_error(exc, self.url, self.settings.safe_url())


def _reply(popped: bytes | None, large: bytes | None) -> bytes | None:
    """A job's answer from its reply list's element and its ``out`` string, read together: the
    element, or where it is the empty marker of a large answer (or a wait took the element
    first and not its answer), the string; None when neither came."""
    return popped or large


def outcome(job_id: str, result: ResultEnvelope) -> ResultEnvelope:
    """A job's result envelope as its waiter sees it: JobFailed for an error answer (its ACL
    code), JobCancelled for a cancel."""
    if result.error is not None:
        raise JobFailed(job_id, result.error.code, result.error.name, result.error.message)
    if result.status == ResultStatus.CANCELLED:
        raise JobCancelled(job_id)
    return result


class Job:
    """A submitted job: ``id``, ``status()``, ``result(timeout_s)``, ``details(timeout_s)``.
    The answer a wait read is kept here: a result is delivered once, to the handle that read it."""

    def __init__(self, client: "Client", job_id: str, *, enqueued: bool = False, notified: bool = False) -> None:
        self._client = client
        self.id = job_id
        # Just enqueued by this client: it exists, so the first wait can block at once.
        self._enqueued = enqueued
        self._notified = notified  # its answer's notice comes to the client's inbox
        self._answer: ResultEnvelope | None = None  #: read by a wait of this handle

    def status(self) -> JobStatus:
        return self._client._drive(self._client._core.status(self.id))

    def cancel(self) -> bool:
        """Cancel the job unless it is answered: not started, it never runs; running, its worker
        terminates the execution (when no job sharing it is still wanted) and its answer is
        dropped. True when it ends cancelled (its waiters get JobCancelled), False when its
        answer came first."""
        cancelled = self._client._drive(self._client._core.cancel(self.id))
        with self._client._inbox_lock:
            self._client._core.cancelled(self.id)
        return cancelled

    def result(self, timeout_s: float | None = None) -> Outputs:
        """Wait for the outputs; raise JobFailed (ACL code), JobCancelled, JobTimeout or JobNotFound."""
        return dict(self.details(timeout_s).outputs)

    def details(self, timeout_s: float | None = None) -> ResultEnvelope:
        """Like :meth:`result`, with the timings, device and worker that ran the job."""
        if self._answer is None:
            enqueued, self._enqueued = self._enqueued, False
            self._client._waiting(+1)
            try:
                self._answer = self._client._drive(
                    self._client._core.result(self.id, timeout_s, enqueued, self._notified)
                )
            finally:
                self._client._waiting(-1)
        return outcome(self.id, self._answer)

    def __repr__(self) -> str:
        return f"<Job {self.id}>"


class AsyncJob:
    """:class:`Job` for :class:`AsyncClient`: the same verbs, awaited."""

    def __init__(self, client: "AsyncClient", job_id: str, *, enqueued: bool = False, notified: bool = False) -> None:
        self._client = client
        self.id = job_id
        self._enqueued = enqueued
        self._notified = notified
        self._answer: ResultEnvelope | None = None

    async def status(self) -> JobStatus:
        return await self._client._drive(self._client._core.status(self.id))

    async def cancel(self) -> bool:
        """As :meth:`Job.cancel`."""
        cancelled = await self._client._drive(self._client._core.cancel(self.id))
        self._client._core.cancelled(self.id)
        return cancelled

    async def result(self, timeout_s: float | None = None, *, cancel_if_abandoned: bool = True) -> Outputs:
        """As :meth:`Job.result`. A wait that is itself cancelled (the caller went away, e.g. a
        web request) cancels the job too, unless ``cancel_if_abandoned`` is False."""
        return dict((await self.details(timeout_s, cancel_if_abandoned=cancel_if_abandoned)).outputs)

    async def details(self, timeout_s: float | None = None, *, cancel_if_abandoned: bool = True) -> ResultEnvelope:
        if self._answer is not None:
            return outcome(self.id, self._answer)
        enqueued, self._enqueued = self._enqueued, False
        self._client._waiting(+1)
        try:
            self._answer = await self._client._drive(
                self._client._core.result(self.id, timeout_s, enqueued, self._notified)
            )
            return outcome(self.id, self._answer)
        except asyncio.CancelledError:
            if cancel_if_abandoned:
                # Shielded: the cancel itself must run to its end although this task is cancelled.
                await asyncio.shield(self.cancel())
            raise
        finally:
            self._client._waiting(-1)

    def __repr__(self) -> str:
        return f"<AsyncJob {self.id}>"


class Client:
    """Submit jobs and wait for results over Redis.

    A caller-supplied ``job_id`` that already exists is not enqueued again: ``submit`` returns
    the existing job.
    """

    def __init__(self, settings: Settings | str | None = None) -> None:
        self._core = _Core(settings)
        self.settings = self._core.settings
        self._redis = redis_client(self.settings)
        self._coalescing = _Coalescing()
        self._coalescing_lock = threading.Lock()
        self._inbox_lock = threading.Lock()
        self._closing = threading.Event()

    def submit(self, model: str, inputs: Mapping[str, Any], **options: Unpack[SubmitOptions]) -> Job:
        """Enqueue one job (its options: :class:`SubmitOptions`). With no ``device`` any free
        worker takes it; ``device`` alone, that device of any host; with ``host``, that worker.
        Jobs of ``submit``s from several threads at once may share a message (``coalesce_max_jobs``)."""
        if options.get("job_id") is not None or self.settings.coalesce_max_jobs <= 1:
            (job,) = self._enqueue(model, [inputs], options)
            return job
        pending = _Pending(self._core.prepare(model, inputs, options), _Wake())
        with self._coalescing_lock:
            self._coalescing.waiting.append(pending)
            batch = self._coalescing.take(pending)
        try:
            while not batch and not pending.sent:
                pending.wake.wait()
                with self._coalescing_lock:  # cleared and looked at together: a wake-up is never lost
                    pending.wake.clear()
                    batch = self._coalescing.take(pending)
        except BaseException:
            with self._coalescing_lock:
                for waiter in self._coalescing.leave(pending):
                    waiter.wake.set()
            raise
        if batch:
            self._send(batch)
        return Job(self, (sent := pending.result()).job_id, enqueued=True, notified=sent.notified)

    def _send(self, batch: list[_Pending]) -> None:
        """Send the jobs of waiting ``submit``s, then let the next waiters send theirs."""
        error: BaseException | None = None
        try:
            self._drive(self._core.enqueue_fresh(self._core.coalesce([p.prepared for p in batch])))
        except BaseException as exc:  # every caller of the batch gets it; this one too, below
            error = exc
        finally:
            with self._coalescing_lock:
                for waiter in self._coalescing.end(batch, error):
                    waiter.wake.set()

    def submit_many(
        self, model: str, inputs: Iterable[Mapping[str, Any]], **options: Unpack[SubmitOptions]
    ) -> list[Job]:
        """Enqueue several jobs with the same options in one round trip and one Celery message.

        Each is still a job of its own, with its own result or error; the message only saves
        the per-message cost of the dispatcher. ``job_id`` cannot be given here.
        """
        return self._enqueue(model, _without_job_id(inputs, options), options)

    def _enqueue(self, model: str, many: list[Mapping[str, Any]], options: SubmitOptions) -> list[Job]:
        sent = self._drive(self._core.enqueue(model, many, options))
        return [Job(self, job.job_id, enqueued=job.new, notified=job.notified) for job in sent]

    def infer(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        result_timeout_s: float | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Outputs:
        """Submit and wait: the outputs by name, or JobFailed with the ACL code."""
        return self.submit(model, inputs, **options).result(result_timeout_s)

    def map(
        self, model: str, inputs: Iterable[Mapping[str, Any]], *, window: int = 8, **options: Unpack[SubmitOptions]
    ) -> Iterator[Outputs]:
        """Results in input order, with at most ``window`` jobs in flight. Jobs are sent in
        chunks (:meth:`submit_many`) whenever half the window is free."""
        for details in self.map_details(model, inputs, window=window, **options):
            yield dict(details.outputs)

    def map_details(
        self, model: str, inputs: Iterable[Mapping[str, Any]], *, window: int = 8, **options: Unpack[SubmitOptions]
    ) -> Iterator[ResultEnvelope]:
        """:meth:`map` yielding each job's :meth:`Job.details` (timings, device, worker)."""
        self._core.map_room(window, 0)  # a bad window fails here, before the first job is sent
        items = iter(inputs)
        in_flight: deque[Job] = deque()
        while True:
            room = self._core.map_room(window, len(in_flight))
            if room:
                in_flight.extend(self.submit_many(model, itertools.islice(items, room), **options))
            if not in_flight:
                return
            yield in_flight.popleft().details()

    def job(self, job_id: str) -> Job:
        """Re-attach to a job by id (its result, unless a wait read it already: ResultTaken)."""
        return Job(self, job_id)

    def close(self) -> None:
        self._closing.set()
        self._redis.close()

    def _waiting(self, change: int) -> None:
        """A wait begins (+1) or ends (-1); jobs submitted while a wait is in progress name the
        inbox."""
        with self._inbox_lock:
            if change > 0:  # the inbox first: a job that sees a wait in progress finds it
                self._core.inbox_for(os.getpid())
            self._core.waits += change

    @staticmethod
    def _reading(client_ref: "weakref.ref[Client]", inbox: _Inbox) -> None:
        """The reader's loop. It holds its client only through a read, so a client dropped
        unclosed is collected, and its reader ends, as a client without one would be."""
        retry_s = READER_RETRY_S
        while (client := client_ref()) is not None and client._core.inbox is inbox and not inbox.refused:
            if client._closing.is_set():
                return
            try:
                client._drive(client._core.read_inbox(inbox, client._inbox_lock))
                retry_s = READER_RETRY_S
            except BrokerError:  # Redis away: the waits look at their jobs themselves meanwhile
                client._closing.wait(retry_s)
                retry_s = min(2 * retry_s, WAIT_SLICE_S)
            del client

    def _notice(self, notice: _Notice) -> bytes | None:
        slot = _Slot(_Wake())
        inbox = self._core.inbox
        assert inbox is not None  # a job names the inbox only once it exists
        with self._inbox_lock:
            if inbox.reader is None or not inbox.reader.is_alive():  # the first wait through it
                args = (weakref.ref(self), inbox)
                inbox.reader = threading.Thread(target=self._reading, args=args, name="aclq-inbox", daemon=True)
                inbox.reader.start()
            if not inbox.wait(notice.job_id, slot):
                return None
        slot.wake.wait(notice.wait_s)
        with self._inbox_lock:
            inbox.end(notice.job_id, slot)
        return slot.data

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drive(self, steps: _Steps[T]) -> T:
        """Run a core generator to its end, doing each I/O step it yields."""
        reply: Any = None
        error: BrokerError | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = self._do(step) if isinstance(step, _Redis) else self._notice(step)
            except BrokerError as exc:
                error = exc

    def _do(self, step: _Redis) -> Any:
        try:
            return round_trip(self._redis, step.commands, step.transaction)
        except redis.RedisError as exc:
            raise self._core.broker_error(exc) from None


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same verbs and return types, awaited
    (``await client.infer(...)``, ``async for out in client.map(...)``)."""

    def __init__(self, settings: Settings | str | None = None) -> None:
        self._core = _Core(settings)
        self.settings = self._core.settings
        #: a Redis client per event loop that used this one: redis.asyncio's connections belong
        #: to the loop that opened them, so a client used under several loops in turn
        #: (``asyncio.run`` twice, a test suite's loop per test) failed on the second with
        #: "attached to a different loop". The first is made here, so a bad URL fails here.
        self._unbound: redis.asyncio.Redis | None = async_redis_client(self.settings)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._coalescing = _Coalescing()

    async def submit(self, model: str, inputs: Mapping[str, Any], **options: Unpack[SubmitOptions]) -> AsyncJob:
        """Enqueue one job (same options as :meth:`Client.submit`; concurrent ``submit``s of
        several tasks may share a message)."""
        if options.get("job_id") is not None or self.settings.coalesce_max_jobs <= 1:
            (job,) = await self._enqueue(model, [inputs], options)
            return job
        pending = _Pending(self._core.prepare(model, inputs, options), asyncio.Event())
        self._coalescing.waiting.append(pending)  # one event loop: nothing runs between these
        batch = self._coalescing.take(pending)
        try:
            while not batch and not pending.sent:
                await pending.wake.wait()
                pending.wake.clear()
                batch = self._coalescing.take(pending)
        except asyncio.CancelledError:
            for waiter in self._coalescing.leave(pending):
                waiter.wake.set()
            raise
        if batch:
            # Shielded: a caller cancelled mid-send must not cancel the send of the others' jobs.
            await asyncio.shield(self._send(batch))
        return AsyncJob(self, (sent := pending.result()).job_id, enqueued=True, notified=sent.notified)

    async def _send(self, batch: list[_Pending]) -> None:
        """As :meth:`Client._send`."""
        error: BaseException | None = None
        try:
            await self._drive(self._core.enqueue_fresh(self._core.coalesce([p.prepared for p in batch])))
        except BaseException as exc:
            error = exc
        finally:
            for waiter in self._coalescing.end(batch, error):
                waiter.wake.set()

    async def submit_many(
        self, model: str, inputs: Iterable[Mapping[str, Any]], **options: Unpack[SubmitOptions]
    ) -> list[AsyncJob]:
        """As :meth:`Client.submit_many`."""
        return await self._enqueue(model, _without_job_id(inputs, options), options)

    async def _enqueue(self, model: str, many: list[Mapping[str, Any]], options: SubmitOptions) -> list[AsyncJob]:
        sent = await self._drive(self._core.enqueue(model, many, options))
        return [AsyncJob(self, job.job_id, enqueued=job.new, notified=job.notified) for job in sent]

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        result_timeout_s: float | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Outputs:
        """Submit and wait; a wait that is cancelled cancels the job (:meth:`AsyncJob.result`)."""
        return await (await self.submit(model, inputs, **options)).result(result_timeout_s)

    async def map(
        self, model: str, inputs: Iterable[Mapping[str, Any]], *, window: int = 8, **options: Unpack[SubmitOptions]
    ) -> AsyncIterator[Outputs]:
        """As :meth:`Client.map`: input order, ``window`` in flight, sent in chunks."""
        async for details in self.map_details(model, inputs, window=window, **options):
            yield dict(details.outputs)

    async def map_details(
        self, model: str, inputs: Iterable[Mapping[str, Any]], *, window: int = 8, **options: Unpack[SubmitOptions]
    ) -> AsyncIterator[ResultEnvelope]:
        """As :meth:`Client.map_details`."""
        self._core.map_room(window, 0)
        items = iter(inputs)
        in_flight: deque[AsyncJob] = deque()
        while True:
            room = self._core.map_room(window, len(in_flight))
            if room:
                in_flight.extend(await self.submit_many(model, itertools.islice(items, room), **options))
            if not in_flight:
                return
            yield await in_flight.popleft().details()

    def job(self, job_id: str) -> AsyncJob:
        """Re-attach to a job by id (its result, unless a wait read it already: ResultTaken)."""
        return AsyncJob(self, job_id)

    async def aclose(self) -> None:
        """Stop the inbox's reader and close the running event loop's connections (a loop that
        ended without closing its own leaves them to be closed when collected)."""
        reader = self._core.inbox.reader if self._core.inbox is not None else None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        redis_client = self._clients.pop(asyncio.get_running_loop(), None)
        if redis_client is not None:
            await redis_client.aclose()
        if self._unbound is not None:  # never used
            await self._unbound.aclose()
            self._unbound = None

    def _waiting(self, change: int) -> None:
        """As :meth:`Client._waiting`."""
        if change > 0:
            self._core.inbox_for(os.getpid())
        self._core.waits += change

    @staticmethod
    async def _reading(client_ref: "weakref.ref[AsyncClient]", inbox: _Inbox) -> None:
        """As :meth:`Client._reading`."""
        retry_s = READER_RETRY_S
        while (client := client_ref()) is not None and client._core.inbox is inbox and not inbox.refused:
            try:
                await client._drive(client._core.read_inbox(inbox, contextlib.nullcontext()))
                retry_s = READER_RETRY_S
            except BrokerError:
                await asyncio.sleep(retry_s)
                retry_s = min(2 * retry_s, WAIT_SLICE_S)
            del client

    async def _notice(self, notice: _Notice) -> bytes | None:
        slot = _Slot(asyncio.Event())
        inbox = self._core.inbox
        assert inbox is not None
        loop = asyncio.get_running_loop()
        if inbox.reader is None or inbox.reader.done() or inbox.reader.get_loop() is not loop:
            inbox.reader = loop.create_task(self._reading(weakref.ref(self), inbox), name="aclq-inbox")
        if not inbox.wait(notice.job_id, slot):
            return None
        try:
            async with asyncio.timeout(notice.wait_s):
                await slot.wake.wait()
        except TimeoutError:
            pass
        finally:
            inbox.end(notice.job_id, slot)
        return slot.data

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _drive(self, steps: _Steps[T]) -> T:
        """:meth:`Client._drive`, awaiting each I/O step."""
        reply: Any = None
        error: BrokerError | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = await (self._do(step) if isinstance(step, _Redis) else self._notice(step))
            except BrokerError as exc:
                error = exc

    def _redis(self) -> redis.asyncio.Redis:
        """The Redis client of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client, self._unbound = self._unbound or async_redis_client(self.settings), None
            self._clients[loop] = client
        return client

    async def _do(self, step: _Redis) -> Any:
        try:
            return await async_round_trip(self._redis(), step.commands, step.transaction)
        except redis.RedisError as exc:
            raise self._core.broker_error(exc) from None


def _without_job_id(inputs: Iterable[Mapping[str, Any]], options: SubmitOptions) -> list[Mapping[str, Any]]:
    """The jobs of ``submit_many`` as a list; a ``job_id`` is for one job only (``submit``)."""
    if options.get("job_id") is not None:
        raise ConfigError("submit_many makes its own job ids; use submit to give one")
    return list(inputs)
