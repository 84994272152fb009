"""`aclq worker --device N`: one Celery worker bound to one device."""

import logging
import sys

from producer.errors import ConfigError
from producer.settings import Settings
from worker.app import create_app


def run_worker(settings: Settings, loglevel: str = "INFO", quiet: bool = False) -> None:
    """Run the worker of ``settings.device`` in this process, then exit with the worker's status:
    0 after a requested shutdown (SIGTERM, SIGINT, remote control), non-zero when it stopped by
    itself (an unrecoverable error), so a supervisor that restarts on failure restarts it.

    Celery's worker is started as its ``celery worker`` command starts it (``app.Worker``), not
    through that command: its command line imports every other ``celery`` subcommand first
    (click-repl and prompt_toolkit among them), 0.13-0.16 s of each worker's start, and returns
    no status."""
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    if loglevel.upper() not in levels:
        raise ConfigError(f"log level {loglevel!r}: expected one of {', '.join(levels)}")
    app = create_app(settings)
    worker = app.Worker(
        hostname=f"aclq-device{settings.device}@{settings.host}",
        loglevel=logging.getLevelName(loglevel.upper()),
        quiet=quiet,  # no start-up banner
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    sys.exit(int(worker.exitcode or 0))
