"""The client: submit jobs, wait for results. ``Client`` and ``AsyncClient`` share every line
of non-I/O logic (:class:`_Jobs`) and differ only in transport.
"""

import asyncio
import itertools
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import redis
import redis.asyncio
from kombu.exceptions import OperationalError

from producer import keys
from producer.dispatch import ASYNC_REDIS_OPTIONS, INFER_TASK, PRIORITIES, REDIS_OPTIONS, make_celery, queue
from producer.errors import (
    ACL_ERROR_INVALID_PARAM,
    BrokerConnectionError,
    ConfigError,
    JobFailed,
    JobNotFound,
    JobTimeout,
    WireError,
)
from producer.settings import Settings
from producer.wire import EXEC_OPTIONS, POSITIONAL, JobEnvelope, ResultEnvelope, model_name_problem

if TYPE_CHECKING:
    from producer import batch


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


#: longest single blocking wait for a result; between two, the client checks that the job still
#: exists, so a job whose records were lost (Redis restarted without persistence) ends in
#: JobNotFound within about this long instead of a wait that never ends
WAIT_SLICE_S = 1.0


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    NOT_FOUND = "not_found"  # never submitted, or expired


Outputs = dict[str, np.ndarray]


class _Jobs:
    """What both clients share: settings, envelopes, keys, routing, result decoding."""

    def __init__(self, settings: Settings | str | None) -> None:
        if settings is None:
            settings = Settings.from_env()
        elif isinstance(settings, str):
            settings = Settings.from_env(redis_url=settings)
        self.settings = settings
        self.url = settings.require_url()
        self._celery = make_celery(settings, main="aclq.producer")

    def envelope(self, model: str, inputs: Mapping[str, Any], **options: Unpack[SubmitOptions]) -> JobEnvelope:
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
        now = time.time()
        return JobEnvelope(
            job_id=job_id,
            model=model,
            inputs=dict(inputs),
            model_version=options.get("version"),
            output_names=tuple(output_names) if output_names is not None else None,
            options=exec_options,
            device=device,
            host=host,
            priority=priority,
            deadline=now + timeout_s if timeout_s is not None else None,
            reply_key=keys.job_reply(self.settings.namespace, job_id),
            enqueued_at=now,
        )

    def enqueue(self, pipe: Any, job: JobEnvelope) -> None:
        """Queue the commands of an atomic enqueue on a MULTI pipeline (no Lua: a payload
        passed through a script costs a megabyte's copy into Lua and back)."""
        ns, ttl = self.settings.namespace, self.settings.payload_ttl_s
        pipe.set(keys.job_input(ns, job.job_id), job.encode(self.settings.max_message_bytes), nx=True, ex=ttl)
        pipe.set(keys.job_state(ns, job.job_id), "queued", nx=True, ex=ttl)

    def outcome(self, jobs: list[JobEnvelope], replies: list[Any]) -> tuple[list[JobEnvelope], list[str]]:
        """From the replies of :meth:`enqueue` (two per job): the jobs it made new, and the
        payloads it set for ids whose state already existed (finished jobs), to be deleted."""
        created, strays = [], []
        for job, payload_set, state_set in zip(jobs, replies[::2], replies[1::2]):
            if payload_set and state_set:
                created.append(job)
            elif payload_set:
                strays.append(keys.job_input(self.settings.namespace, job.job_id))
        return created, strays

    def job_keys(self, jobs: list[JobEnvelope]) -> list[str]:
        """Payload and state keys of ``jobs``: deleted when publishing failed, so a retry can enqueue."""
        ns = self.settings.namespace
        return [k for job in jobs for k in (keys.job_input(ns, job.job_id), keys.job_state(ns, job.job_id))]

    def publish(self, jobs: list[JobEnvelope]) -> None:
        """One Celery message for ``jobs``, which share their model and options and so their
        queue: the message costs one delivery, and names the model so that a worker knows
        whether to gather it with others for a batch."""
        ns, first = self.settings.namespace, jobs[0]
        if first.device is None:
            name = keys.shared_queue(ns)
        elif first.host is None:
            name = keys.device_queue(ns, first.device)
        else:
            name = keys.host_device_queue(ns, first.host, first.device)
        ids = [job.job_id for job in jobs]
        try:
            self._celery.send_task(
                INFER_TASK, args=[ids], kwargs={"model": first.model}, queue=queue(name), priority=first.priority
            )
        except OperationalError as exc:
            raise self.broker_error(exc) from None

    def found(self, job_id: str, data: bytes | None, state: bytes | None) -> bytes | None:
        """From a look at a job's reply and state: the reply when it is there, None while the
        job is still on its way, JobNotFound when neither exists."""
        if data is None and state is None:
            raise JobNotFound(
                f"no job {job_id}: never submitted, its result expired, or Redis lost it (restarted, no persistence)"
            )
        return data

    def next_wait(self, job_id: str, timeout_s: float | None, deadline: float | None) -> float:
        """Seconds of the next blocking wait for a result; JobTimeout once ``deadline`` passed."""
        if deadline is None:
            return WAIT_SLICE_S
        left = deadline - time.monotonic()
        if left <= 0:
            raise JobTimeout(f"job {job_id} gave no result within {timeout_s} s")
        return min(WAIT_SLICE_S, left)

    def details(self, job_id: str, data: bytes) -> ResultEnvelope:
        result = ResultEnvelope.decode(data, self.settings.max_message_bytes)
        if result.error is not None:
            raise JobFailed(job_id, result.error.code, result.error.name, result.error.message)
        return result

    def close(self) -> None:
        self._celery.close()

    def broker_error(self, exc: Exception) -> BrokerConnectionError:
        # redis' messages name host and port, never the password
        return BrokerConnectionError(f"Redis at {self.settings.safe_url()}: {exc}")

    def result_keys(self, job_id: str) -> tuple[str, str]:
        ns = self.settings.namespace
        return keys.job_reply(ns, job_id), keys.job_state(ns, job_id)


class Job:
    """A submitted job: ``id``, ``status()``, ``result(timeout_s)``."""

    def __init__(self, client: "Client", job_id: str, *, enqueued: bool = False) -> None:
        self._client = client
        self.id = job_id
        # Just enqueued by this client: it exists, so the first wait can block at once.
        self._enqueued = enqueued

    def status(self) -> JobStatus:
        return self._client._status(self.id)

    def result(self, timeout_s: float | None = None) -> Outputs:
        """Wait for the outputs; raise JobFailed (ACL code), JobTimeout or JobNotFound."""
        return dict(self.details(timeout_s).outputs)

    def details(self, timeout_s: float | None = None) -> ResultEnvelope:
        """Like :meth:`result`, with the timings, device and worker that ran the job."""
        enqueued, self._enqueued = self._enqueued, False
        return self._client._result(self.id, timeout_s, known=enqueued)

    def __repr__(self) -> str:
        return f"<Job {self.id}>"


class Client:
    """Submit jobs and wait for results over Redis.

    A caller-supplied ``job_id`` that already exists is not enqueued again: ``submit`` returns
    the existing job.
    """

    def __init__(self, settings: Settings | str | None = None) -> None:
        self._jobs = _Jobs(settings)
        self.settings = self._jobs.settings
        self._redis = redis.Redis.from_url(self._jobs.url, **REDIS_OPTIONS)

    def submit(self, model: str, inputs: Mapping[str, Any], **options: Unpack[SubmitOptions]) -> Job:
        """Enqueue one job (its options: :class:`SubmitOptions`). With no ``device`` any free
        worker takes it; ``device`` alone, that device of any host; with ``host``, that worker."""
        (job,) = self._enqueue(model, [inputs], options)
        return job

    def submit_many(
        self, model: str, inputs: Iterable[Mapping[str, Any]], **options: Unpack[SubmitOptions]
    ) -> list[Job]:
        """Enqueue several jobs with the same options in one round trip and one Celery message.

        Each is still a job of its own, with its own result or error; the message only saves
        the per-message cost of the dispatcher. ``job_id`` cannot be given here.
        """
        if options.get("job_id") is not None:
            raise ConfigError("submit_many makes its own job ids; use submit to give one")
        return self._enqueue(model, list(inputs), options)

    def _enqueue(self, model: str, many: list[Mapping[str, Any]], options: SubmitOptions) -> list[Job]:
        jobs = [self._jobs.envelope(model, inputs, **options) for inputs in many]
        if not jobs:
            return []
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                for job in jobs:
                    self._jobs.enqueue(pipe, job)
                created, strays = self._jobs.outcome(jobs, pipe.execute())
            if strays:
                self._redis.delete(*strays)
        except redis.RedisError as exc:
            raise self._jobs.broker_error(exc) from None
        if created:
            try:
                self._jobs.publish(created)
            except BrokerConnectionError:
                self._redis.delete(*self._jobs.job_keys(created))
                raise
        fresh = {job.job_id for job in created}
        return [Job(self, job.job_id, enqueued=job.job_id in fresh) for job in jobs]

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
        if window < 1:
            raise ConfigError(f"window must be at least 1, got {window}")
        items = iter(inputs)
        in_flight: deque[Job] = deque()
        while True:
            room = window - len(in_flight)
            if room >= max(1, window // 2) or not in_flight:
                in_flight.extend(self.submit_many(model, itertools.islice(items, room), **options))
            if not in_flight:
                return
            yield in_flight.popleft().result()

    def job(self, job_id: str) -> Job:
        """Re-attach to a job by id."""
        return Job(self, job_id)

    def batch(
        self,
        model: str,
        source: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        batch_size: int = 1,
        input_name: str = POSITIONAL,
        window: int = 16,
        retries: int = 0,
        resume: bool = False,
        quiet: bool = True,
        **options: Unpack[SubmitOptions],
    ) -> "batch.Summary":
        """Offline inference over a directory, a split array or a manifest (see producer.batch).

        Failed items are reported in the returned summary, not raised.
        """
        from producer import batch

        work = batch.plan(Path(source), Path(output), batch_size=batch_size, input_name=input_name)
        return batch.run(self, model, work, window=window, retries=retries, resume=resume, quiet=quiet, **options)

    def close(self) -> None:
        self._redis.close()
        self._jobs.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _status(self, job_id: str) -> JobStatus:
        _, state_key = self._jobs.result_keys(job_id)
        try:
            state = self._redis.get(state_key)
        except redis.RedisError as exc:
            raise self._jobs.broker_error(exc) from None
        return JobStatus(state.decode()) if state else JobStatus.NOT_FOUND

    def _result(self, job_id: str, timeout_s: float | None, known: bool = False) -> ResultEnvelope:
        """The result envelope; ``known``: the job surely exists, so skip the look before waiting."""
        reply_key, state_key = self._jobs.result_keys(job_id)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            data = None if known else self._look(job_id, reply_key, state_key)
            while data is None:
                # BLMOVE of a list onto itself: the result is returned and stays for other readers.
                wait_s = self._jobs.next_wait(job_id, timeout_s, deadline)
                data = self._redis.blmove(reply_key, reply_key, wait_s, "LEFT", "LEFT")
                if data is None:
                    data = self._look(job_id, reply_key, state_key)
        except redis.RedisError as exc:
            raise self._jobs.broker_error(exc) from None
        return self._jobs.details(job_id, data)

    def _look(self, job_id: str, reply_key: str, state_key: str) -> bytes | None:
        with self._redis.pipeline(transaction=True) as pipe:
            data, state = pipe.lindex(reply_key, 0).get(state_key).execute()
        return self._jobs.found(job_id, data, state)


class AsyncClient:
    """The asyncio twin of :class:`Client`: ``await client.infer(...)``."""

    def __init__(self, settings: Settings | str | None = None) -> None:
        self._jobs = _Jobs(settings)
        self.settings = self._jobs.settings
        self._redis = redis.asyncio.Redis.from_url(self._jobs.url, **ASYNC_REDIS_OPTIONS)

    async def submit(self, model: str, inputs: Mapping[str, Any], **options: Unpack[SubmitOptions]) -> str:
        """Enqueue one job (same options as :meth:`Client.submit`); returns its id."""
        job = self._jobs.envelope(model, inputs, **options)
        try:
            pipe = self._redis.pipeline(transaction=True)
            self._jobs.enqueue(pipe, job)
            created, strays = self._jobs.outcome([job], await pipe.execute())
            if strays:
                await self._redis.delete(*strays)
        except redis.RedisError as exc:
            raise self._jobs.broker_error(exc) from None
        if created:
            try:
                await asyncio.to_thread(self._jobs.publish, created)  # Celery's publisher is synchronous
            except BrokerConnectionError:
                await self._redis.delete(*self._jobs.job_keys(created))
                raise
        return job.job_id

    async def result(self, job_id: str, timeout_s: float | None = None) -> Outputs:
        reply_key, state_key = self._jobs.result_keys(job_id)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            data = await self._look(job_id, reply_key, state_key)
            while data is None:
                wait_s = self._jobs.next_wait(job_id, timeout_s, deadline)
                data = await self._redis.blmove(reply_key, reply_key, wait_s, "LEFT", "LEFT")
                if data is None:
                    data = await self._look(job_id, reply_key, state_key)
        except redis.RedisError as exc:
            raise self._jobs.broker_error(exc) from None
        return dict(self._jobs.details(job_id, data).outputs)

    async def _look(self, job_id: str, reply_key: str, state_key: str) -> bytes | None:
        data, state = await self._redis.pipeline(transaction=True).lindex(reply_key, 0).get(state_key).execute()
        return self._jobs.found(job_id, data, state)

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        result_timeout_s: float | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Outputs:
        return await self.result(await self.submit(model, inputs, **options), result_timeout_s)

    async def map(
        self, model: str, inputs: Iterable[Mapping[str, Any]], *, window: int = 8, **options: Unpack[SubmitOptions]
    ) -> AsyncIterator[Outputs]:
        if window < 1:
            raise ConfigError(f"window must be at least 1, got {window}")
        in_flight: deque[str] = deque()
        for item in inputs:
            if len(in_flight) >= window:
                yield await self.result(in_flight.popleft())
            in_flight.append(await self.submit(model, item, **options))
        while in_flight:
            yield await self.result(in_flight.popleft())

    async def aclose(self) -> None:
        await self._redis.aclose()
        self._jobs.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
