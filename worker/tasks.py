"""The one task: execute jobs by id. Their payloads wait in Redis; Celery carries only the ids
(and the model they name, so the worker knows whether to gather them for a batch)."""

import time

from celery import Celery, Task

from producer.wire import INFER_TASK
from worker.device import DeviceWorker
from worker.gather import GatheringTask, Received


def register_infer(app: Celery, device_worker: DeviceWorker) -> Task:
    """Register the infer task on ``app`` (this app only), running on ``device_worker``."""

    @app.task(name=INFER_TASK, base=GatheringTask, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def infer(received: list[Received]) -> None:
        """Run the jobs of the gathered messages; their answers acknowledge the messages. Never
        raises for a job's failure: the executor answers every job with a result."""
        started = time.monotonic()
        jobs = [job for r in received for job in r.task.payloads()]
        device_worker.run(jobs, [r.message.delivery_tag for r in received])
        runtime = time.monotonic() - started
        for r in received:
            infer.send_event("task-succeeded", uuid=r.id, result=None, runtime=runtime)
        device_worker.after_job()

    return infer
