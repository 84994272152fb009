"""The one task: execute jobs by id. Their payloads wait in Redis; Celery carries only the ids
(and the model they name, so the worker knows whether to gather them for a batch)."""

import time
from typing import Any

from celery_batches import SimpleRequest

from producer.dispatch import INFER_TASK
from worker import device
from worker.app import app
from worker.gather import GatheringTask


@app.task(name=INFER_TASK, base=GatheringTask, ignore_result=True)
def infer(requests: list[SimpleRequest]) -> None:
    """Run the jobs of the gathered messages. Never raises for a job's failure: the executor
    answers every job with a result."""
    started = time.monotonic()
    try:
        device.executor().run([job_id for request in requests for job_id in _job_ids(request.args)])
    finally:
        device.release_leases([request.id for request in requests])
    runtime = time.monotonic() - started
    for request in requests:
        infer.send_event("task-succeeded", uuid=request.id, result=None, runtime=runtime)
    device.after_job()


def _job_ids(args: Any) -> list[str]:
    # A message whose argument is not a list (not one aclq sent) is still answered, as one id.
    job_ids = args[0] if args else ""
    return [str(j) for j in job_ids] if isinstance(job_ids, list) else [str(job_ids)]
