"""Gathers the messages that arrive within a model's ``max_queue_delay_ms``, so the executor can
run their jobs as one batch.

The solo pool runs a task inside the consumer's event loop, so a worker sees no new message while
it executes. celery-batches' task class buffers messages in that loop and hands them to the task
as a list, acknowledging each (acks_late) only after the task returns, that is after every job's
result is pushed. This module decides when the buffer runs: at once for a message whose model
does not batch, when a model's jobs fill its ``max_batch_size``, or when the first of them has
waited its ``max_queue_delay_ms`` (celery-batches' timer ticks every TICK_S to look).
"""

import time
from collections.abc import Callable
from typing import Any

from celery_batches import Batches
from kombu.message import Message

from acl_core import AclError
from producer.errors import WireError
from producer.wire import TaskMessage
from worker.failpoints import FailPoints
from worker.models import ModelConfig

#: how often buffered messages are looked at: the granularity of max_queue_delay_ms
TICK_S = 0.0005


class Gathering:
    """When buffered messages run, from the configs of the models their jobs name."""

    def __init__(
        self,
        config: Callable[[str], ModelConfig],
        failpoints: FailPoints | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._failpoints = failpoints
        self._clock = clock
        self._waiting: dict[str, tuple[float, int]] = {}  # model -> (run by, jobs buffered)

    def arrived(self, model: str, jobs: int) -> bool:
        """Note a message of ``jobs`` jobs for ``model``; True: run the buffer now."""
        run_now = self._run_now(model, jobs)
        # The chaos tests' "holding received messages": one that runs at once, or two gathering.
        if self._failpoints is not None and (run_now or self._waiting[model][1] >= 2):
            self._failpoints.reached("hold")
        return run_now

    def _run_now(self, model: str, jobs: int) -> bool:
        try:
            config = self._config(model)
        except AclError:  # no such model: the executor answers each job with the reason
            return True
        if not config.batching or config.max_queue_delay_ms <= 0:
            return True
        run_by, buffered = self._waiting.get(model, (self._clock() + config.max_queue_delay_ms / 1000, 0))
        self._waiting[model] = (run_by, buffered + jobs)
        return buffered + jobs >= config.max_batch_size

    def due(self) -> bool:
        """Whether some model's first buffered job has waited its delay (or nothing waits)."""
        return not self._waiting or min(run_by for run_by, _ in self._waiting.values()) <= self._clock()

    def ran(self) -> None:
        self._waiting.clear()


class GatheringTask(Batches):  # type: ignore[misc]
    """A Celery task whose messages wait in the worker as :class:`Gathering` decides, then run
    together: the task function receives the list of their requests."""

    flush_every = 1 << 62  # never by count: Gathering decides
    flush_interval = TICK_S
    #: this app's task's, set when its worker binds (worker/device.py); until then every message
    #: runs at once
    gathering: Gathering | None = None

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Callable[..., None]:  # noqa: N802 - Celery's name
        buffer = super().Strategy(task, app, consumer)
        self.consumer = consumer
        # Called again when the consumer restarts after losing Redis, with its timers cleared:
        # tick again for whatever the buffer still holds (their acks may fail then; the
        # redelivered copies find their jobs answered).
        self._tref = None
        if not self._buffer.empty():
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)

        def on_message(message: Message, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> None:
            try:
                task = TaskMessage.from_body(message.payload)  # decodes the body
            except WireError as exc:  # decoded, but not an infer task's arguments: no job to answer
                consumer.on_invalid_task(body, message, exc)
                return
            except Exception as exc:  # a body that is not what it says: nothing to run
                consumer.on_decode_error(message, exc)
                return
            try:
                buffer(message, body, ack, reject, callbacks, **kw)
            except Exception as exc:  # decoded, but not a task celery-batches can make a request of
                consumer.on_invalid_task(body, message, exc)
                return
            self.send_event("task-received", uuid=message.headers.get("id"), name=self.name)
            if self.gathering is None or self.gathering.arrived(task.model, len(task.job_ids)):
                self._run_buffer()

        return on_message

    def _do_flush(self) -> None:
        """celery-batches' timer tick: run the buffer once a delay has passed."""
        if self.gathering is None or self.gathering.due():
            self._run_buffer()

    def _run_buffer(self) -> None:
        if self.gathering is not None:
            self.gathering.ran()
        super()._do_flush()

    def send_event(self, kind: str, **fields: Any) -> None:
        """A task event for Flower (celery-batches sends none): the worker's dispatcher sends it
        only when task events are on, buffered as Celery's own."""
        dispatcher = getattr(getattr(self, "consumer", None), "event_dispatcher", None)
        if dispatcher is not None:
            dispatcher.send(kind, **fields)
