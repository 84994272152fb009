"""One job, start to finish: fetch, decode, check, execute on the device, answer exactly once."""

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import redis

from acl_core import AclError, Device, ExecConfig, codes
from acl_core.constants import INT32_MAX
from producer import keys
from producer.errors import WireError
from producer.settings import Settings
from producer.wire import POSITIONAL, ErrorInfo, JobEnvelope, ResultEnvelope
from worker.metrics import Metrics
from worker.models import ModelCache

log = logging.getLogger(__name__)
#: longest Redis outage a worker waits out before giving a job up to redelivery
REDIS_OUTAGE_S = 60
#: seconds of history behind the "recent" throughput and error counts
RECENT_S = 60

# Answer once: the first result for a job id wins; a redelivered job's second answer is dropped
# (the script returns 0 then, and the staged copy is deleted).
# The result was pushed to a staging list beforehand and is RENAMEd into place here, O(1):
# a megabyte passed through a script would be copied into Lua and back.
_FINISH = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[1])
redis.call('DEL', KEYS[4])
return 1
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
    """Runs one job at a time on one device: claim, decode, check, execute, answer once."""

    def __init__(
        self,
        settings: Settings,
        device: Device,
        models: ModelCache,
        client: redis.Redis,
        name: str,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self.device = device
        self._models = models
        self.metrics = metrics or Metrics()
        self._redis = client
        self._finish = client.register_script(_FINISH)
        self.name = name
        self.counters = Counters()

    def run(self, job_ids: Sequence[str]) -> None:
        """Execute the jobs of one message, in order, and answer each; every failure becomes an
        error result. Redis is visited twice for the whole message: one pipeline claims every
        job, one answers them all."""
        ns = self._settings.namespace

        def claim(pipe: Any) -> None:
            for job_id in job_ids:
                state_key, runs_key = keys.job_state(ns, job_id), keys.job_runs(ns, job_id)
                pipe.set(state_key, "running", xx=True, keepttl=True, get=True).get(keys.job_input(ns, job_id))
                pipe.incr(runs_key).expire(runs_key, self._settings.payload_ttl_s)

        claimed = self._pipeline(claim)
        restores: dict[str, bytes] = {}  # answered jobs whose state the claim overwrote
        answers: list[tuple[str, Callable[[Any], None]]] = []
        for index, job_id in enumerate(job_ids):
            state, data, attempt, _ = claimed[4 * index : 4 * index + 4]
            if state in (b"done", b"failed"):  # redelivered after its answer: its worker died before the ack
                log.info("job %s was already answered; attempt %d skipped", job_id, attempt)
                restores[keys.job_state(ns, job_id)] = state
                continue
            job, result, timings = self._execute_one(job_id, data, attempt)
            # Counted before the answer goes out, so whoever reads the answer sees it counted too.
            self._observe(job, result, timings)
            answers.append((job_id, self._answer(job_id, result, timings)))
        if not answers and not restores:
            return

        def answer_all(pipe: Any) -> None:
            for state_key, state in restores.items():
                pipe.set(state_key, state, xx=True, keepttl=True)
            for _, finish in answers:
                finish(pipe)

        replies = self._pipeline(answer_all)[len(restores) :]
        for (job_id, _), first in zip(answers, replies[2::3]):  # each finish: RPUSH, EXPIRE, script
            if not first:
                log.warning("job %s was already answered; this run's result is dropped", job_id)

    def _execute_one(
        self, job_id: str, data: bytes | None, attempt: int
    ) -> tuple[JobEnvelope | None, ResultEnvelope, dict[str, float]]:
        started = time.time()
        timings: dict[str, float] = {}
        job: JobEnvelope | None = None
        try:
            if data is None:
                raise WireError(
                    codes.ACL_ERROR_INVALID_PARAM, f"job {job_id} has no payload: expired or never submitted"
                )
            job = JobEnvelope.decode(data, self._settings.max_message_bytes)
            timings["queued_ms"] = max(0.0, (started - job.enqueued_at) * 1000)
            outputs = self._execute(job_id, job, timings)
            result = ResultEnvelope(job_id, "ok", outputs, attempt=attempt)
        except (AclError, WireError) as exc:
            result = self._error(job_id, exc.code, exc.name, exc.message, attempt)
        except Exception as exc:  # a bug must not kill the worker or lose the job: answer it
            log.exception("job %s failed unexpectedly", job_id)
            result = self._error(job_id, codes.ACL_ERROR_INTERNAL_ERROR, "ACL_ERROR_INTERNAL_ERROR", repr(exc), attempt)
        timings["total_ms"] = (time.time() - started) * 1000 + timings.get("queued_ms", 0.0)
        return job, result, timings

    def _observe(self, job: JobEnvelope | None, result: ResultEnvelope, timings: dict[str, float]) -> None:
        ok = result.error is None
        self.counters.count(ok)
        first = next(iter(job.inputs.values()), None) if job is not None else None
        rows = int(first.shape[0]) if first is not None and first.ndim else None
        queued, executed = timings.get("queued_ms"), timings.get("exec_ms")
        self.metrics.observe(
            job.model if job is not None else "",
            "ok" if ok else str(result.error.code if result.error else ""),
            queued / 1000 if queued is not None else None,
            executed / 1000 if executed is not None else None,
            rows if ok else None,
        )
        self.metrics.device_memory.set(self.device.memory().in_use)
        self.metrics.models_loaded.set(len(self._models))

    def _execute(self, job_id: str, job: JobEnvelope, timings: dict[str, float]) -> dict[str, np.ndarray]:
        if job.job_id != job_id or job.reply_key != keys.job_reply(self._settings.namespace, job_id):
            raise WireError(codes.ACL_ERROR_INVALID_PARAM, f"job {job_id}'s payload names another job or reply key")
        if job.deadline is not None and time.time() > job.deadline:
            raise AclError(codes.ACL_ERROR_RT_TASK_TIMEOUT, f"deadline passed {time.time() - job.deadline:.3f} s ago")
        model, ref = self._models.get(job.model, job.model_version)
        exec_started = time.perf_counter()
        inputs = dict(job.inputs)
        if list(inputs) == [POSITIONAL] and len(model.inputs) == 1:  # a bare .npy for a one-input model
            inputs = {model.inputs[0].name: inputs[POSITIONAL]}
        outputs = model.execute(inputs, self._config(job), output_names=job.output_names)
        timings["exec_ms"] = (time.perf_counter() - exec_started) * 1000
        log.info(
            "job %s %s:%d on device %d: %.1f ms", job_id, ref.name, ref.version, self.device.id, timings["exec_ms"]
        )
        return outputs

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

    def _answer(self, job_id: str, result: ResultEnvelope, timings: dict[str, float]) -> Callable[[Any], None]:
        """The commands that push the result, unless the job was answered already (a redelivery)."""
        ns, limit = self._settings.namespace, self._settings.max_message_bytes
        result = replace(result, timings=timings, device=self.device.id, worker=self.name)
        try:
            data = result.encode(limit)
        except WireError as exc:  # outputs too large for one message: answer with that error
            error = self._error(job_id, exc.code, exc.name, exc.message, result.attempt)
            result = replace(error, timings=timings, device=self.device.id, worker=self.name)
            data = result.encode(limit)
        staging = keys.job_staging(ns, job_id, uuid.uuid4().hex)
        job_keys = [staging, keys.job_reply(ns, job_id), keys.job_state(ns, job_id), keys.job_input(ns, job_id)]
        state = "done" if result.error is None else "failed"

        def finish(pipe: Any) -> None:
            pipe.rpush(staging, data).expire(staging, self._settings.result_ttl_s)
            self._finish(job_keys, [self._settings.result_ttl_s, state], client=pipe)

        return finish

    def _pipeline(self, commands: Callable[[Any], None]) -> list[Any]:
        """Run ``commands`` in one round trip, waiting out a Redis outage (a restart, a failover)
        for up to REDIS_OUTAGE_S: a computed result is worth delivering once Redis is back."""
        deadline = time.monotonic() + REDIS_OUTAGE_S
        delay = 0.1
        while True:
            try:
                with self._redis.pipeline(transaction=False) as pipe:
                    commands(pipe)
                    return pipe.execute()  # type: ignore[no-any-return]
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def __repr__(self) -> str:
        return f"<Executor {self.name} device={self.device.id} done={self.counters.done} failed={self.counters.failed}>"
