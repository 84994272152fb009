"""`aclq worker --device N`: one Celery worker bound to one device."""

import sys
from typing import Any

from celery import signals

from producer.settings import Settings
from worker.app import create_app


def run_worker(settings: Settings, loglevel: str = "INFO", quiet: bool = False) -> None:
    """Run the worker of ``settings.device`` in this process, then exit with the worker's status:
    0 after a requested shutdown (SIGTERM, SIGINT, remote control), non-zero when it stopped by
    itself (an unrecoverable error), so a supervisor that restarts on failure restarts it."""
    app = create_app(settings)

    # Celery computes the status (1 after an unrecoverable error) but neither worker_main nor
    # app.start returns it, so every stop looked like a clean exit: read it off the worker.
    status: list[int] = []

    def stopped(sender: Any = None, **_: object) -> None:
        status.append(int(getattr(sender, "exitcode", None) or 0))

    signals.worker_shutdown.connect(stopped, weak=False)
    app.worker_main(
        [
            *(["--quiet"] if quiet else []),  # a global option of the celery command: before "worker"
            "worker",
            f"--loglevel={loglevel}",
            f"--hostname=aclq-device{settings.device}@{settings.host}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    sys.exit(max(status, default=0))
