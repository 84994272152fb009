"""The one task: execute jobs by id. Their payloads wait in Redis; Celery carries only the ids
(and the model they name, so the worker knows whether to gather them for a batch)."""

import time

from celery import Celery, Task
from celery_batches import SimpleRequest

from producer.wire import INFER_TASK, TaskMessage
from worker.device import DeviceWorker
from worker.gather import GatheringTask


def register_infer(app: Celery, device_worker: DeviceWorker) -> Task:
    """Register the infer task on ``app`` (this app only), running on ``device_worker``."""

    @app.task(name=INFER_TASK, base=GatheringTask, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def infer(requests: list[SimpleRequest]) -> None:
        """Run the jobs of the gathered messages. Never raises for a job's failure: the executor
        answers every job with a result."""
        started = time.monotonic()
        try:
            jobs = [job for r in requests for job in TaskMessage.decode(r.args, r.kwargs).payloads()]
            device_worker.run(jobs, [request.id for request in requests])
        finally:
            device_worker.finished([request.id for request in requests])
        runtime = time.monotonic() - started
        for request in requests:
            infer.send_event("task-succeeded", uuid=request.id, result=None, runtime=runtime)
        device_worker.after_job()

    return infer
