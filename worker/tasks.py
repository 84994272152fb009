"""The one task: execute a job by id. Its payload waits in Redis; Celery carries only the id."""

from producer.dispatch import INFER_TASK
from worker import device
from worker.app import app


@app.task(name=INFER_TASK, ignore_result=True)
def infer(job_id: str) -> None:
    """Never raises for a job's failure: the executor answers every job with a result."""
    device.executor().run(job_id)
    device.after_job()
