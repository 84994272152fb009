"""The `aclq` commands of a worker host: `aclq worker`, `aclq up`, `aclq devices`, and the local
cluster `aclq batch` runs on when no broker is configured.

They reach the `aclq` group through entry points (``aclq.commands``, ``aclq.local_cluster`` in
pyproject.toml), so the producer package names none of them; the group loads one only when it
is named. Each checks first that the engine is installed: an enqueue-only install
(``pip install aclq``) has this package but not onnxruntime, and is told which extra to add.
"""

import contextlib
import dataclasses
import importlib.util
import json
import signal
import sys
import threading
from collections.abc import Iterator

import click

from producer.errors import WORKER_EXTRA, AclqError, ConfigError
from producer.settings import Settings


def require_engine(what: str) -> None:
    """ConfigError naming the extra when ONNX Runtime (the worker extra's engine) is missing."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(f"{what} runs devices, which needs the worker extra: {WORKER_EXTRA}")


@contextlib.contextmanager
def local_cluster(settings: Settings) -> Iterator[Settings]:
    """A private Redis and one worker per local device, for as long as the block runs."""
    require_engine("a run with no broker configured (ACLQ_REDIS_URL unset)")
    from worker.local import LocalCluster

    with LocalCluster(settings) as cluster:
        yield cluster.settings


@click.command()
@click.option("--device", type=int, required=True, help="the device this worker binds")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(device: int, loglevel: str) -> None:
    """Run one Celery worker bound to one device."""
    try:
        require_engine("aclq worker")
        from worker.main import run_worker

        run_worker(Settings.from_env(device=device), loglevel)
    except AclqError as exc:  # e.g. no broker configured
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--devices", type=int, default=None, help="workers to start (default: every visible device)")
def up(devices: int | None) -> None:
    """Start workers (and a private Redis when ACLQ_REDIS_URL is unset); Ctrl-C stops all."""
    try:
        require_engine("aclq up")
    except AclqError as exc:
        raise click.ClickException(str(exc)) from None
    from worker.local import LocalCluster

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalCluster(Settings.from_env(), list(range(devices)) if devices else None, loglevel="INFO") as cluster:
        click.echo(f"ACLQ_REDIS_URL={cluster.settings.safe_url()}")
        click.echo(f"aclq up: {len(cluster.workers)} workers on devices {sorted(cluster.workers)}; Ctrl-C stops")
        try:
            while not stop.wait(1):
                dead = [d for d, p in cluster.workers.items() if p.poll() is not None]
                if dead:
                    click.echo(f"aclq up: the worker of device {dead[0]} exited", err=True)
                    sys.exit(1)
        except KeyboardInterrupt:
            pass
    click.echo("aclq up: stopped")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object per device, for scripts")
def devices(as_json: bool) -> None:
    """What each backend sees on this host: device id, provider, memory."""
    try:
        require_engine("aclq devices")
    except AclqError as exc:
        raise click.ClickException(str(exc)) from None
    from acl_core.backends import inventory
    from acl_core.config import RuntimeConfig

    rows = inventory(RuntimeConfig.from_env())
    if as_json:
        for row in rows:
            click.echo(json.dumps(dataclasses.asdict(row)))
        return
    click.echo(f"{'backend':<12} {'provider':<24} {'device':>6} {'memory':>10}  note")
    for row in rows:
        device = "-" if row.device is None else str(row.device)
        memory = "-" if row.memory_bytes is None else f"{row.memory_bytes / (1 << 30):.1f} GiB"
        click.echo(f"{row.backend:<12} {row.provider:<24} {device:>6} {memory:>10}  {row.note}")
