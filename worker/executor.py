"""Jobs, start to finish: fetch, decode, check, execute on the device (batched where their model
allows), answer each exactly once."""

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import redis

from acl_core import AclError, Device, ExecConfig, Model, codes
from acl_core.constants import INT32_MAX
from producer import keys, storage
from producer.connection import round_trip
from producer.errors import WireError
from producer.settings import Settings
from producer.transport import Books, settling
from producer.wire import (
    NOTICE_ANSWER_MAX,
    POSITIONAL,
    ErrorInfo,
    JobEnvelope,
    JobStatus,
    ResultEnvelope,
    leading_rows,
    rows_signature,
)
from worker.batching import Packer, batch_key, join, split
from worker.failpoints import FailPoints
from worker.metrics import Metrics
from worker.models import ModelCache, ModelRef
from worker.runs import SMALLEST_RUN, RunSizes

log = logging.getLogger(__name__)
#: longest Redis outage a worker waits out before giving a job up to redelivery
REDIS_OUTAGE_S = 60
#: seconds of history behind the "recent" throughput and error counts
RECENT_S = 60
#: the states in which a claim leaves a job alone
FINAL_STATES = tuple(s.value for s in JobStatus if s.final)

# Claim the jobs of a run: mark each running and count its attempt, unless it was answered
# already (a redelivery after its worker died before the ack) or cancelled: then it is left as
# it is, never run nor shown running again. An attempt is counted once per run: a pipeline resent after a lost
# connection presents the same run id and is not counted twice. One call for all the run's jobs
# (a call per job costs Redis a script invocation each).
# KEYS: state, runs of each job. ARGV: run id, TTL of runs, the state running, then every final
# state (producer.wire.JobStatus). Returns state before, attempt per job.
_CLAIM = """
local final = {}
for j = 4, #ARGV do final[ARGV[j]] = true end
local out = {}
for i = 1, #KEYS, 2 do
  local state = redis.call('GET', KEYS[i])
  local seen = redis.call('HMGET', KEYS[i + 1], 'run', 'n')
  local n = tonumber(seen[2]) or 0
  if not final[state] then
    if seen[1] ~= ARGV[1] then
      n = redis.call('HINCRBY', KEYS[i + 1], 'n', 1)
      redis.call('HSET', KEYS[i + 1], 'run', ARGV[1])
      redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
    end
    if state then
      redis.call('SET', KEYS[i], ARGV[3], 'KEEPTTL')
    end
  end
  out[#out + 1] = state
  out[#out + 1] = n
end
return out
"""

# Answer once: the first result for a job id wins; a redelivered job's second answer is dropped
# (0 for it, and the staged copy is deleted). A job is answered when its state is final (done,
# failed, or cancelled), not when its reply exists: the wait that reads a reply takes it out of
# Redis. A resent answer of the same run finds its own answer recorded (1: not reported as a
# second one), or its result staged twice (one is kept).
# Each result was staged beforehand and is RENAMEd into place here, O(1): a megabyte passed
# through a script would be copied into Lua and back. A result is staged as a list, which
# becomes the reply; one over NOTICE_ANSWER_MAX to a job that names its ``out`` key, as a
# string, which becomes ``out``, with an empty element for the reply (the marker its waits look
# for): Redis moves a string's megabyte with two copies fewer than a list element's.
# An answer moved into place is noticed in its client's inbox: the job id, then the answer where
# it is small (NOTICE_ANSWER_MAX; the reader then needs no read of its own), else an empty string.
# KEYS: staging, reply, out, state, input, runs, inbox (the reply again where none) of each job.
# ARGV: TTL, run id, how many final states, the final states (producer.wire.JobStatus), then
# each job's final state, id, notice ('' none, 'id', 'answer') and '1' where staged as a string.
_FINISH = """
local final, at = {}, 4 + tonumber(ARGV[3])
for j = 4, at - 1 do final[ARGV[j]] = true end
local won = {}
for j = 1, #KEYS / 7 do
  local k = 7 * (j - 1)
  local staging, reply, out, state = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local a = at + 4 * (j - 1)
  if final[redis.call('GET', state)] then
    redis.call('DEL', staging)
    won[j] = redis.call('HGET', KEYS[k + 6], 'answered') == ARGV[2] and 1 or 0
  else
    if ARGV[a + 3] == '1' then
      redis.call('RENAME', staging, out)
      redis.call('EXPIRE', out, ARGV[1])
      redis.call('RPUSH', reply, '')
    else
      redis.call('LTRIM', staging, -1, -1)
      redis.call('RENAME', staging, reply)
    end
    redis.call('EXPIRE', reply, ARGV[1])
    redis.call('SET', state, ARGV[a], 'EX', ARGV[1])
    redis.call('DEL', KEYS[k + 5])
    redis.call('HSET', KEYS[k + 6], 'answered', ARGV[2])
    if ARGV[a + 2] ~= '' then
      local answer = ARGV[a + 2] == 'answer' and redis.call('LINDEX', reply, 0) or ''
      redis.call('RPUSH', KEYS[k + 7], ARGV[a + 1], answer)
      redis.call('EXPIRE', KEYS[k + 7], ARGV[1])
    end
    won[j] = 1
  end
end
return won
"""


@dataclass
class Counters:
    """What this worker has done, for its repr, its heartbeat and `aclq status`."""

    done: int = 0
    failed: int = 0
    last_job_at: float = 0.0
    #: (time, ok) of the answers in the last RECENT_S seconds
    recent: deque[tuple[float, bool]] = field(default_factory=deque)

    def count(self, ok: bool) -> None:
        now = time.time()
        self.done += ok
        self.failed += not ok
        self.last_job_at = now
        self.recent.append((now, ok))
        while self.recent and self.recent[0][0] < now - RECENT_S:
            self.recent.popleft()

    def recent_counts(self) -> tuple[int, int]:
        """(done, failed) in the last RECENT_S seconds."""
        cutoff = time.time() - RECENT_S
        ok = [good for t, good in list(self.recent) if t >= cutoff]
        return sum(ok), len(ok) - sum(ok)


class Executor:
    """Runs jobs on one device: claim, decode, check, execute (alone or batched), answer once."""

    def __init__(
        self,
        settings: Settings,
        device: Device,
        models: ModelCache,
        client: redis.Redis,
        name: str,
        metrics: Metrics | None = None,
        failpoints: FailPoints | None = None,
        books: Books | None = None,
    ) -> None:
        self._settings = settings
        self.device = device
        self._models = models
        self.metrics = metrics or Metrics()
        self.metrics.watch(lambda: device.memory().in_use, lambda: len(models))
        self._failpoints = failpoints or FailPoints(client, settings.namespace, armed="")
        self._redis = client
        self._books = books  #: kombu's, where the answers acknowledge their messages
        # Called by sha in the round trips; a server that lost them (restarted) is given them
        # again by round_trip (its scripts=).
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self.name = name
        self.counters = Counters()
        # What the cancel listener's thread reads and the job thread writes: the current run's
        # job ids, those of them cancelled, and the execution in progress (model, its job ids).
        self._cancel_lock = threading.Lock()
        self._run_ids: frozenset[str] = frozenset()
        self._cancelled: set[str] = set()
        self._executing: tuple[Model, frozenset[str]] | None = None
        #: reads the inputs of the next job by reference while the current one executes
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aclq-read")
        #: rows a run for jobs whose rows split, measured per model and input signature
        self._run_sizes = RunSizes()

    def cancelled(self, job_id: str) -> None:
        """A caller cancelled ``job_id`` (the cancel listener's thread): if this worker runs it,
        note it, and terminate the execution in progress once every job it serves is cancelled
        (one member's cancel never fails a batch)."""
        with self._cancel_lock:
            if job_id not in self._run_ids:
                return
            self._cancelled.add(job_id)
            if self._executing is not None and self._executing[1] <= self._cancelled:
                log.info("jobs %s cancelled while executing: terminating", ", ".join(sorted(self._executing[1])))
                self._executing[0].abort()

    def run(self, jobs: Sequence[tuple[str, bytes | None]], acks: Sequence[str] = ()) -> None:
        """Execute the jobs of one or more messages, each given by its id and its envelope when
        it travelled inline (None: it waits under keys.job_input), and answer each; every
        failure becomes an error result. Jobs their model lets batch run together
        (worker/batching.py). Redis is visited twice in all: one pipeline claims every job (and
        fetches the payloads not inline), one answers them all and acknowledges the messages of
        delivery tags ``acks`` (kombu's ack is a round trip a message)."""
        run = uuid.uuid4().hex
        with self._cancel_lock:
            self._run_ids, self._cancelled = frozenset(job_id for job_id, _ in jobs), set()
        try:
            self._run(jobs, run, acks)
        finally:
            with self._cancel_lock:
                self._run_ids, self._cancelled = frozenset(), set()

    def _run(self, jobs: Sequence[tuple[str, bytes | None]], run: str, acks: Sequence[str]) -> None:
        works: list[_Work] = []
        for claim in self._claim_all(jobs, run):
            if claim.final:  # cancelled, or redelivered after its answer (its worker died before the ack)
                log.info("job %s is %s (attempt %d); not run", claim.job_id, claim.final, claim.attempt)
                continue
            works.append(self._prepare(claim))
        if not works:
            return
        self._failpoints.reached("execute")
        packer: Packer[_Work] = Packer()
        for work in works:
            ready = work.ready
            if ready is None:
                packer.add(work, None, 0, 0)
            else:
                packer.add(work, ready.batch_key, ready.rows, ready.ref.config.max_batch_size)
        for group in self._read_ahead(packer.groups()):
            self._execute(group)
        for work in works:
            # Counted before the answer goes out, so whoever reads the answer sees it counted too.
            self._observe(work)
        answers = [self._answer(work, run) for work in works]
        self._failpoints.reached("answer")
        for answer, first in zip(answers, self._finish_all(answers, run, acks), strict=True):
            if not first:
                log.warning("job %s was answered or cancelled meanwhile; this run's result is dropped", answer.job_id)

    def _claim_all(self, jobs: Sequence[tuple[str, bytes | None]], run: str) -> list["_Claim"]:
        """Claim the jobs for ``run`` and fetch the payloads that did not travel inline: one
        round trip."""
        ns = self._settings.namespace
        job_ids = [job_id for job_id, _ in jobs]
        claim_keys = [key for job_id in job_ids for key in (keys.job_state(ns, job_id), keys.job_runs(ns, job_id))]
        states = (JobStatus.RUNNING.value, *FINAL_STATES)
        fetch = [job_id for job_id, inline in jobs if inline is None]

        claim = ("EVALSHA", self._claim.sha, len(claim_keys), *claim_keys, run, self._settings.payload_ttl_s, *states)
        claimed, *fetched = self._round_trip([claim, *(("GET", keys.job_input(ns, job_id)) for job_id in fetch)])
        payloads = iter(fetched)
        before, attempts = claimed[0::2], claimed[1::2]  # the script's (state, attempt) per job
        finals = {state.encode(): state for state in FINAL_STATES}
        claims = []
        for (job_id, inline), state, attempt in zip(jobs, before, attempts, strict=True):
            payload = inline if inline is not None else next(payloads)
            # A job without a state expired (payload_ttl_s) or was never submitted, wherever its
            # payload travelled: it is answered so, not run.
            claims.append(_Claim(job_id, finals.get(state), attempt, payload if state is not None else None))
        return claims

    def _finish_all(self, answers: list["_Answer"], run: str, acks: Sequence[str]) -> list[bool]:
        """Stage every answer and move each into place unless its job is answered already, and
        acknowledge the messages: one round trip; per answer, whether it is the job's answer
        (False: another run's won)."""
        ttl = self._settings.result_ttl_s

        commands: list[tuple[Any, ...]] = []
        finish_keys, args = [], []
        for answer in answers:
            if answer.large:
                commands.append(("SET", answer.staging, answer.data, "EX", ttl))
            else:
                commands += [("RPUSH", answer.staging, answer.data), ("EXPIRE", answer.staging, ttl)]
            finish_keys += [*answer.keys, answer.notify_key or answer.keys[1]]
            args += [answer.state.value, answer.job_id, answer.notice, "1" if answer.large else ""]
        finals = (len(FINAL_STATES), *FINAL_STATES)
        finish_at = len(commands)
        commands.append(("EVALSHA", self._finish.sha, len(finish_keys), *finish_keys, ttl, run, *finals, *args))
        if self._books is not None:
            commands += self._books.acks(acks)
        with settling(acks if self._books is not None else ()):
            replies = self._round_trip(commands)
        return [bool(first) for first in replies[finish_at]]

    def _prepare(self, claim: "_Claim") -> "_Work":
        """Decode and check a job and find its model: a work item ready to execute, or answered
        with the error that stopped it."""
        job_id = claim.job_id
        work = _Work(job_id, claim.attempt, time.time())
        try:
            if claim.payload is None:
                raise WireError(
                    codes.ACL_ERROR_INVALID_PARAM, f"job {job_id} has no payload: expired or never submitted"
                )
            job = JobEnvelope.decode(claim.payload, self._settings.max_message_bytes)
            work.model_name = job.model
            work.timings["queued_ms"] = max(0.0, (work.started - job.enqueued_at) * 1000)
            ns = self._settings.namespace
            if job.job_id != job_id or job.reply_key != keys.job_reply(ns, job_id):
                raise WireError(codes.ACL_ERROR_INVALID_PARAM, f"job {job_id}'s payload names another job or reply key")
            if job.large_reply_key not in (None, keys.job_out(ns, job_id)):
                raise WireError(codes.ACL_ERROR_INVALID_PARAM, f"job {job_id}'s large_reply_key is not its own")
            work.large = job.large_reply_key is not None
            if job.notify_key is not None and not keys.is_client_inbox(ns, job.notify_key):
                raise WireError(codes.ACL_ERROR_INVALID_PARAM, f"job {job_id}'s notify_key is no client inbox")
            work.notify_key = job.notify_key
            if job.deadline is not None and time.time() > job.deadline:
                raise AclError(
                    codes.ACL_ERROR_RT_TASK_TIMEOUT, f"deadline passed {time.time() - job.deadline:.3f} s ago"
                )
            model, ref = self._models.get(job.model, job.model_version)
            config = self._config(job)
            if _runs_alone(job, ref.config.max_batch_size):  # read just before it runs (_read_ahead)
                work.ready = _Ready(job, model, ref, {}, config, None, 0, unread=True)
                return work
            feeds = _feeds(job, model)
            key = batch_key(model, ref.config.max_batch_size, feeds, config, job.output_names)
            work.ready = _Ready(job, model, ref, feeds, config, key, leading_rows(feeds))
        except Exception as exc:
            self._fail(work, exc)
        return work

    def _read_ahead(self, groups: list[list["_Work"]]) -> Iterator[list["_Work"]]:
        """The groups, in order, each with its jobs' inputs read; the inputs of jobs that run
        alone by reference (``_Ready.unread``) are read one such job ahead by the reader thread,
        while the one before executes (the engine releases the GIL). The first is read here: a
        thread would only add its hand-over, which a busy machine makes ~1 % of a worker's time
        when every job comes alone (bench.offline's B). Once a group has executed, the inputs
        read for it are let go: at most two jobs' inputs read by reference are in memory."""
        unread = [w for group in groups for w in group if w.ready is not None and w.ready.unread]
        following = dict(zip(map(id, unread), unread[1:]))
        reads: dict[int, Future[dict[str, np.ndarray]]] = {}
        for group in groups:
            read = []
            for work in group:
                ready = work.ready
                if ready is None or not ready.unread:
                    continue
                after = following.get(id(work))
                if after is not None and after.ready is not None:
                    reads[id(after)] = self._reader.submit(_feeds, after.ready.job, after.ready.model)
                future = reads.pop(id(work), None)
                try:
                    feeds = future.result() if future is not None else _feeds(ready.job, ready.model)
                    work.ready = replace(ready, feeds=feeds, rows=leading_rows(feeds), unread=False)
                    read.append(work)
                except Exception as exc:
                    self._fail(work, exc)
            yield group
            for work in read:
                if work.ready is not None:
                    work.ready = replace(work.ready, feeds={})

    def close(self) -> None:
        """Stop the reader thread (a read in progress is abandoned)."""
        self._reader.shutdown(wait=False, cancel_futures=True)

    def _execute(self, group: list["_Work"]) -> None:
        """Run a group: one execution on the joined rows, split back per job; a group of one,
        or a batch that fails (one bad job must not fail the others), runs each job alone."""
        ready = [(w, w.ready) for w in group if w.ready is not None and w.result is None]
        if len(ready) > 1:
            first = ready[0][1]
            try:
                feeds = join([r.feeds for _, r in ready])
                outputs, exec_ms = self._timed(first, feeds, [w.job_id for w, _ in ready], False)
                for (work, r), rows in zip(ready, split(outputs, [r.rows for _, r in ready]), strict=True):
                    self._succeed(work, r, rows, exec_ms, len(ready))
                return
            except Exception as exc:  # each job alone then gets its own result or error
                log.info("a batch of %d %s jobs failed (%s); running them one by one", len(ready), first.job.model, exc)
        for work, r in ready:
            try:
                outputs, exec_ms = self._timed(r, r.feeds, [work.job_id], r.job.split_rows)
                self._succeed(work, r, outputs, exec_ms, 1)
            except Exception as exc:
                self._fail(work, exc)

    def _timed(
        self, ready: "_Ready", feeds: dict[str, np.ndarray], job_ids: list[str], split_rows: bool
    ) -> tuple[dict[str, np.ndarray], float]:
        """Execute for ``job_ids`` (in runs where ``split_rows``: :meth:`_in_runs`), unless
        every one of them is cancelled already; while it runs, :meth:`cancelled` may terminate it."""
        ids = frozenset(job_ids)
        with self._cancel_lock:
            if ids <= self._cancelled:
                raise AclError(codes.ACL_ERROR_RT_FAILURE, "cancelled before it executed")
            self._executing = (ready.model, ids)
        try:
            started = time.perf_counter()
            outputs = self._in_runs(ready, feeds, ids, split_rows)
            return outputs, (time.perf_counter() - started) * 1000
        finally:
            with self._cancel_lock:
                self._executing = None

    def _in_runs(
        self, ready: "_Ready", feeds: dict[str, np.ndarray], ids: frozenset[str], split_rows: bool
    ) -> dict[str, np.ndarray]:
        """Execute ``feeds``: at once, or, for a job alone whose rows split (``split_rows``, and
        every input has them), in runs of the size this worker measures fastest
        (worker/runs.py; acl_core runs them: ``Model.execute(runs=)``), joined back. The job's
        timeout covers all its runs, and a cancel between two runs stops it before the next."""
        rows = leading_rows(feeds)
        if not split_rows or rows <= SMALLEST_RUN:
            return self._execute_once(ready, feeds, ready.config)
        key = (ready.ref.name, ready.ref.version, ready.job.output_names, rows_signature(feeds))
        runs = _Runs(self, ready.ref.name, key, rows, ids)
        try:
            return ready.model.execute(feeds, ready.config, output_names=ready.job.output_names, runs=runs)
        finally:
            for run_rows, seconds in runs.ran:  # counted after them: between two runs it would slow them
                self.metrics.executed(ready.ref.name, seconds, run_rows)

    def _execute_once(self, ready: "_Ready", feeds: dict[str, np.ndarray], config: ExecConfig) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        outputs = ready.model.execute(feeds, config, output_names=ready.job.output_names)
        self.metrics.executed(ready.ref.name, time.perf_counter() - started, leading_rows(feeds))
        return outputs

    def _succeed(
        self, work: "_Work", ready: "_Ready", outputs: dict[str, np.ndarray], exec_ms: float, batch_jobs: int
    ) -> None:
        work.timings["exec_ms"] = exec_ms
        written: tuple[str, ...] = ()
        if ready.job.output_to is not None:  # written here; the answer says where, not what
            try:
                written, outputs = storage.write_outputs(ready.job.output_to, outputs), {}
            except WireError as exc:
                self._fail(work, exc)
                return
        work.result = ResultEnvelope(
            work.job_id, "ok", outputs, attempt=work.attempt, batch_jobs=batch_jobs, written=written
        )
        log.info(
            "job %s %s:%d on device %d: %.1f ms (%d in batch)",
            work.job_id, ready.ref.name, ready.ref.version, self.device.id, exec_ms, batch_jobs,
        )  # fmt: skip

    def _fail(self, work: "_Work", exc: Exception) -> None:
        if isinstance(exc, AclError | WireError):
            work.result = self._error(work.job_id, exc.code, exc.name, exc.message, work.attempt)
        else:  # a bug must not kill the worker or lose the job: answer it
            log.exception("job %s failed unexpectedly", work.job_id, exc_info=exc)
            name = "ACL_ERROR_INTERNAL_ERROR"
            work.result = self._error(work.job_id, codes.ACL_ERROR_INTERNAL_ERROR, name, repr(exc), work.attempt)

    def _observe(self, work: "_Work") -> None:
        result = work.result
        assert result is not None  # every work item is answered before it is observed
        work.timings["total_ms"] = (time.time() - work.started) * 1000 + work.timings.get("queued_ms", 0.0)
        ok = result.error is None
        self.counters.count(ok)
        queued = work.timings.get("queued_ms")
        status = "ok" if ok else str(result.error.code if result.error else "")
        self.metrics.answered(work.model_name, status, queued / 1000 if queued is not None else None)

    def _config(self, job: JobEnvelope) -> ExecConfig:
        """The job's options, its stream timeout capped by the task time limit (the hard limit)."""
        options = dict(job.options)
        limit_ms = self._settings.task_time_limit_s * 1000
        asked = options.get("stream_sync_timeout_ms", -1)
        # Only valid values are capped: the job's own bad values are left for ACL's validation.
        if type(asked) is int and (asked in (-1, 0) or limit_ms < asked <= INT32_MAX):
            options["stream_sync_timeout_ms"] = limit_ms
        return ExecConfig(**options)

    def _error(self, job_id: str, code: int, name: str, message: str, attempt: int) -> ResultEnvelope:
        log.warning("job %s failed: [%d %s] %s", job_id, code, name, message)
        return ResultEnvelope(job_id, "error", error=ErrorInfo(code, name, message), attempt=attempt)

    def _answer(self, work: "_Work", run: str) -> "_Answer":
        """A job's result, encoded, and the keys its answer in ``run`` touches."""
        ns, limit, job_id = self._settings.namespace, self._settings.max_message_bytes, work.job_id
        assert work.result is not None  # every work item is answered before its answer is sent
        result = replace(work.result, timings=work.timings, device=self.device.id, worker=self.name)
        try:
            data = result.encode(limit)
        except WireError as exc:  # outputs too large for one message: answer with that error
            error = self._error(job_id, exc.code, exc.name, exc.message, result.attempt)
            result = replace(error, timings=work.timings, device=self.device.id, worker=self.name)
            data = result.encode(limit)
        staging = keys.job_staging(ns, job_id, run)
        return _Answer(
            job_id,
            data,
            [staging, keys.job_reply(ns, job_id), keys.job_out(ns, job_id), keys.job_state(ns, job_id),
             keys.job_input(ns, job_id), keys.job_runs(ns, job_id)],
            JobStatus.DONE if result.error is None else JobStatus.FAILED,
            work.notify_key,
            work.large and len(data) > NOTICE_ANSWER_MAX,
        )  # fmt: skip

    def _round_trip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one round trip (producer.connection.round_trip), waiting out a
        Redis outage (a restart, a failover) for up to REDIS_OUTAGE_S: a computed result is
        worth delivering once Redis is back. A server without the scripts (restarted) gets them,
        and the commands again: what of them ran before is safe to run twice (the claim and the
        answer are idempotent per run)."""
        deadline = time.monotonic() + REDIS_OUTAGE_S
        delay = 0.1
        while True:
            try:
                return round_trip(self._redis, commands, scripts=(_CLAIM, _FINISH))
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def __repr__(self) -> str:
        return f"<Executor {self.name} device={self.device.id} done={self.counters.done} failed={self.counters.failed}>"


@dataclass(frozen=True)
class _Claim:
    """A job as the claim found it."""

    job_id: str
    final: str | None  #: its state when answered (done, failed) or cancelled already: not run
    attempt: int  #: 1 on its first delivery
    payload: bytes | None  #: its job envelope; None when it expired or never existed


@dataclass
class _Answer:
    """What answering a job writes: its encoded result, staged, then moved into place."""

    job_id: str
    data: bytes | memoryview
    keys: list[str]  #: staging, reply, out, state, input, runs: the finish script's keys for it
    state: JobStatus  #: DONE or FAILED
    notify_key: str | None  #: the client's inbox, noticed once the answer is in place
    large: bool  #: staged and answered as the string ``out``, a marker in the reply list

    @property
    def notice(self) -> str:
        """What the inbox is told: nothing, the id, or the id and the answer (_FINISH)."""
        if self.notify_key is None:
            return ""
        return "answer" if len(self.data) <= NOTICE_ANSWER_MAX else "id"

    @property
    def staging(self) -> str:
        return self.keys[0]


@dataclass(frozen=True)
class _Ready:
    """A decoded, checked job with its model: what executing it needs."""

    job: JobEnvelope
    model: Model
    ref: ModelRef
    feeds: dict[str, np.ndarray]
    config: ExecConfig
    batch_key: Hashable | None  #: None: it runs alone
    rows: int
    #: its inputs by reference are not read yet (it runs alone: read just before, _read_ahead)
    unread: bool = False


class _Runs:
    """A split job's runs (acl_core.model.Runs): sizes from the worker's measurements
    (worker/runs.py), a cancel honoured between two runs; ``ran``: each run's rows and seconds,
    an execution each in the metrics."""

    __slots__ = ("_executor", "_model", "_key", "_rows", "_ids", "ran")

    def __init__(self, executor: Executor, model: str, key: Hashable, rows: int, ids: frozenset[str]) -> None:
        self._executor, self._model, self._key, self._rows, self._ids = executor, model, key, rows, ids
        self.ran: list[tuple[int, float]] = []

    def next(self, done: int, rows: int) -> int:
        executor = self._executor
        with executor._cancel_lock:
            if self._ids <= executor._cancelled:
                raise AclError(codes.ACL_ERROR_RT_FAILURE, f"cancelled after {done} of {rows} rows")
        return executor._run_sizes.next(self._key, rows, rows - done)

    def record(self, rows: int, seconds: float) -> None:
        self._executor._run_sizes.record(self._key, self._rows, rows, seconds * 1000)
        self.ran.append((rows, seconds))

    def refuse(self, rows: int | None) -> None:
        if rows is None:
            log.info("%s's outputs do not have the rows of a run: its jobs run at once", self._model)
        else:
            log.info("%s refused a run of %d rows; runs of it are not tried again", self._model, rows)
        self._executor._run_sizes.refuse(self._key, rows)


def _runs_alone(job: JobEnvelope, max_batch_size: int) -> bool:
    """Whether a job with inputs by reference runs alone whatever its inputs hold, so they need
    not be read to group it: its model does not batch, or the rows it names are more than a
    batch holds."""
    refs = job.input_refs.values()
    if not refs:
        return False
    return max_batch_size <= 1 or all(at.rows is not None and at.rows[1] - at.rows[0] > max_batch_size for at in refs)


def _feeds(job: JobEnvelope, model: Model) -> dict[str, np.ndarray]:
    """A job's inputs: those it carries, and those by reference read where they lie
    (memory-mapped when local: only the rows asked for)."""
    feeds = {**job.inputs, **{name: storage.read_input(at) for name, at in job.input_refs.items()}}
    if list(feeds) == [POSITIONAL] and len(model.inputs) == 1:  # a bare .npy for a one-input model
        feeds = {model.inputs[0].name: feeds[POSITIONAL]}
    return feeds


@dataclass
class _Work:
    """One job through the executor: ready to execute (``ready``), then answered (``result``)."""

    job_id: str
    attempt: int
    started: float  #: Unix time the worker took it
    timings: dict[str, float] = field(default_factory=dict)
    model_name: str = ""  #: as the job named it, once decoded
    notify_key: str | None = None  #: the submitting client's inbox, once decoded and checked
    large: bool = False  #: its client reads an answer over NOTICE_ANSWER_MAX as a string (``out``)
    ready: _Ready | None = None  #: None: it failed before it could execute (result says why)
    result: ResultEnvelope | None = None
