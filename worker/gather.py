"""Gathers the messages that arrive within a model's ``max_queue_delay_ms``, so the executor can
run their jobs as one batch.

The solo pool runs a task inside the consumer's event loop, so a worker sees no new message while
it executes. :class:`GatheringTask` is the infer task's strategy (what Celery's consumer calls
with each delivered message): it decodes the message once, holds it, and hands the held ones to
the task function together, acknowledging each only after the function returns, that is after
every job's result is pushed. :class:`Gathering` decides when the held messages run: at once for
a message whose model does not batch, when a model's rows fill its ``max_batch_size`` (as the
messages' ROWS_HEADER says, else a row a job), or when the first of them has waited its
``max_queue_delay_ms`` (a timer ticks every TICK_S to look). A delay of 0 (the default, as
Triton's) batches the messages that are waiting and waits for none: the held ones run once a
claim's last message is delivered and the claim left the worker's queues empty
(``delivering_last``, producer/transport.py). Under load, jobs queue while the worker executes
and the next claim takes them together; at a light load no job waits for company.

No Celery ``Request`` is made of a message: a job's work is aclq's (claim, execute, answer,
acknowledge in the answer's round trip), and Celery's per-message request, trace and pool
machinery cost more than the rest of receiving a message (a profile, docs/performance.md).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from kombu.message import Message

from acl_core import AclError
from producer.errors import WireError
from producer.wire import TaskMessage
from worker.failpoints import FailPoints
from worker.models import ModelConfig

log = logging.getLogger(__name__)

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
        self._waiting: dict[str, tuple[float, int]] = {}  # model -> (run by, rows buffered)

    def arrived(self, model: str, rows: int, last: bool = False) -> bool:
        """Note a message of ``rows`` rows (its jobs' together) for ``model``; ``last``: no
        other message waits in the worker's queues now. True: run the buffer now."""
        run_now = self._run_now(model, rows) or (last and self.due())
        # The chaos tests' "holding received messages": one that runs at once, or two rows gathering.
        if self._failpoints is not None and (run_now or self._waiting[model][1] >= 2):
            self._failpoints.reached("hold")
        return run_now

    def _run_now(self, model: str, rows: int) -> bool:
        try:
            config = self._config(model)
        except AclError:  # no such model: the executor answers each job with the reason
            return True
        if not config.batching:
            return True
        run_by, buffered = self._waiting.get(model, (self._clock() + config.max_queue_delay_ms / 1000, 0))
        self._waiting[model] = (run_by, buffered + rows)
        return buffered + rows >= config.max_batch_size

    def due(self) -> bool:
        """Whether some model's first buffered job has waited its delay (or nothing waits)."""
        return not self._waiting or min(run_by for run_by, _ in self._waiting.values()) <= self._clock()

    def ran(self) -> None:
        self._waiting.clear()


@dataclass(frozen=True)
class Received:
    """A delivered message held for a run: its decoded task, and kombu's message."""

    task: TaskMessage
    message: Message

    @property
    def id(self) -> str:
        """The Celery task id it carries (what Flower's events name)."""
        return str(self.message.headers.get("id", ""))


class GatheringTask(Task):  # type: ignore[misc]
    """A Celery task whose messages wait in the worker as :class:`Gathering` decides, then run
    together: the task function receives the list of them (:class:`Received`)."""

    #: this app's task's, set when its worker binds (worker/device.py); until then every message
    #: runs at once
    gathering: Gathering | None = None

    def Strategy(self, task: Any, app: Any, consumer: Any, **_: Any) -> Callable[..., None]:  # noqa: N802 - Celery's name
        self.consumer = consumer
        self._held: list[Received] = getattr(self, "_held", [])
        # Called again when the consumer restarts after losing Redis, with its timers cleared:
        # tick again for whatever is still held (their acks may fail then; the redelivered
        # copies find their jobs answered).
        self._tick_ref: Any = None
        if self._held:
            self._tick_ref = consumer.timer.call_repeatedly(TICK_S, self._tick)

        def on_message(message: Message, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> None:
            try:
                task = TaskMessage.from_body(message.payload)  # decodes the body
            except WireError as exc:  # decoded, but not an infer task's arguments: no job to answer
                consumer.on_invalid_task(body, message, exc)
                return
            except Exception as exc:  # a body that is not what it says: nothing to run
                consumer.on_decode_error(message, exc)
                return
            self._held.append(Received(task, message))
            self.send_event("task-received", uuid=message.headers.get("id"), name=self.name)
            rows = TaskMessage.rows_of(message.headers, len(task.job_ids))
            last = getattr(message.channel, "delivering_last", False)  # aclq's transport's (any other: False)
            if self.gathering is None or self.gathering.arrived(task.model, rows, last):
                self._run_held()
            elif self._tick_ref is None:
                self._tick_ref = consumer.timer.call_repeatedly(TICK_S, self._tick)

        return on_message

    def _tick(self) -> None:
        """The timer: run the held messages once a delay has passed."""
        if self.gathering is None or self.gathering.due():
            self._run_held()

    def _run_held(self) -> None:
        """Run every held message's jobs (the task function), then acknowledge the messages. A
        function that raises is a bug or Redis gone for longer than the executor waits: logged,
        and the messages acknowledged as Celery would (where Redis is gone the acks fail, and
        the visibility timeout delivers them again)."""
        held, self._held = self._held, []
        if self.gathering is not None:
            self.gathering.ran()
        if self._tick_ref is not None:
            self._tick_ref.cancel()
            self._tick_ref = None
        if not held:
            return
        try:
            self.run(held)
        except Exception:
            log.exception("running the jobs of %d messages failed", len(held))
        for received in held:
            received.message.ack_log_error(log, self.consumer.connection_errors)  # type: ignore[no-untyped-call]

    def send_event(self, kind: str, **fields: Any) -> None:
        """A task event for Flower: the worker's dispatcher sends it only when task events are
        on, buffered as Celery's own."""
        dispatcher = getattr(getattr(self, "consumer", None), "event_dispatcher", None)
        if dispatcher is not None:
            dispatcher.send(kind, **fields)
