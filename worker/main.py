"""`aclq worker --device N`: one Celery worker bound to one device."""

import os
import sys
from typing import Any

from celery import signals


def run_worker(device: int, loglevel: str = "INFO", quiet: bool = False) -> None:
    """Run the worker for ``device`` in this process, then exit with the worker's status: 0 after
    a requested shutdown (SIGTERM, SIGINT, remote control), non-zero when it stopped by itself
    (an unrecoverable error), so a supervisor that restarts on failure restarts it."""
    os.environ["ACLQ_DEVICE"] = str(device)
    from worker.app import app  # reads ACLQ_* now that the device is set

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
            f"--hostname=aclq-device{device}@{app.conf.aclq_host}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    sys.exit(max(status, default=0))
