"""The Celery app of a worker, built from its settings (an app factory: nothing is read or bound
at import). Run it as ``aclq worker --device N``, or ``ACLQ_DEVICE=N celery -A
worker.app worker`` (the app is built when Celery asks for it).
"""

from celery import Celery

from producer import keys
from producer.dispatch import make_celery, queue
from producer.settings import Settings
from producer.transport import CLAIM_ROWS_OPTION, DEAD_LETTER_HOOK_OPTION
from worker.device import DeviceWorker
from worker.models import ModelRepository
from worker.tasks import register_infer


def create_app(settings: Settings) -> Celery:
    """The worker of ``settings.device``: its Celery app, with the task registered and the
    device bound on the worker's start (worker/device.py)."""
    app = make_celery(settings, main="aclq.worker")
    app.conf.update(
        # One process per device, executing in the process that consumes: the device context and
        # loaded models live there for the worker's life, and nothing forks after binding.
        worker_pool="solo",
        worker_concurrency=1,
        # Hold no more messages than one batch needs (one, when no model batches; counted in rows
        # too, CLAIM_ROWS_OPTION below), so a busy device leaves the shared queue to the others.
        # Messages are acknowledged after their jobs' answers are pushed (worker/gather.py), so a
        # worker lost mid-job loses no job.
        worker_prefetch_multiplier=ModelRepository(settings.model_repo).largest_batch(),
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
    )
    device_worker = DeviceWorker(app, settings)
    app.conf.broker_transport_options[DEAD_LETTER_HOOK_OPTION] = device_worker.dead_lettered
    app.conf.broker_transport_options[CLAIM_ROWS_OPTION] = app.conf.worker_prefetch_multiplier
    register_infer(app, device_worker)
    device_worker.connect()
    return app


def __getattr__(name: str) -> Celery:
    """``worker.app.app``: the worker app of the ``ACLQ_*`` settings, built on access, for
    Celery's own command line (``celery -A worker.app``), which takes an app, not a factory."""
    if name == "app":
        return create_app(Settings.from_env())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
