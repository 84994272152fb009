"""`aclq worker --device N`: one Celery worker bound to one device."""

import os


def run_worker(device: int, loglevel: str = "INFO", quiet: bool = False) -> None:
    """Start the worker for ``device`` in this process; returns when it stops."""
    os.environ["ACLQ_DEVICE"] = str(device)
    from worker.app import app  # reads ACLQ_* now that the device is set

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
