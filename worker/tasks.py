"""The one task: execute a job by id. Its payload waits in Redis; Celery carries only the id."""

from producer.dispatch import INFER_TASK
from worker import device
from worker.app import app


@app.task(name=INFER_TASK, ignore_result=True)
def infer(job_ids: list[str]) -> None:
    """Run the jobs of one message in order. Never raises for a job's failure: the executor
    answers every job with a result."""
    # A message whose argument is not a list (not one aclq sent) is still answered, as one id.
    device.executor().run([str(j) for j in job_ids] if isinstance(job_ids, list) else [str(job_ids)])
    device.after_job()
