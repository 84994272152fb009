"""The Celery app of a worker: the shared dispatch config plus worker-side options.

Run it as ``aclq worker --device N`` or ``ACLQ_DEVICE=N celery -A worker.app worker -P solo``.
"""

from producer import keys
from producer.dispatch import make_celery, queue
from producer.settings import Settings
from worker.models import ModelRepository

settings = Settings.from_env()
app = make_celery(settings, main="aclq.worker")
app.conf.update(
    # One process per device, executing in the process that consumes: the device context and
    # loaded models live there for the worker's life, and nothing forks after binding.
    worker_pool="solo",
    worker_concurrency=1,
    # Hold no more messages than one batch needs (one, when no model batches), so a busy device
    # leaves the shared queue to the others.
    worker_prefetch_multiplier=ModelRepository(settings.model_repo).largest_batch(),
    # Acknowledge after the result is pushed, so a worker lost mid-job loses no job.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # Its own device's queue, and the shared queue any free device serves.
    task_queues=[
        queue(keys.host_device_queue(settings.namespace, settings.host, settings.device)),
        queue(keys.device_queue(settings.namespace, settings.device)),
        queue(keys.shared_queue(settings.namespace)),
    ],
    # Task events cost a publish each; off until a monitor asks: Flower turns them on in every
    # worker through remote control when it starts (its default), and they flow while it runs.
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    # Celery's consumer, whose refusals (undecodable body, unknown task) are dead-lettered too
    worker_consumer="worker.consumer:Consumer",
    aclq_host=settings.host,  # for the worker's Celery node name
)

import worker.device  # noqa: E402,F401 - binds the device on the worker's signals
import worker.tasks  # noqa: E402,F401 - registers the task
