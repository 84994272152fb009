"""The ``aclq`` command: thin commands over the library."""

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from importlib.metadata import version as package_version
from pathlib import Path
from typing import NoReturn

import click
import numpy as np

from producer import batch as batch_run
from producer import settings as aclq_settings
from producer.client import Client
from producer.errors import WORKER_EXTRA, AclqError, ConfigError
from producer.malloc import keep_message_buffers
from producer.perf import run_perf
from producer.settings import Settings
from producer.status import fetch_status, healthy, render
from producer.wire import OUTPUT_FORMATS


def _model_ref(value: str) -> tuple[str, int | None]:
    try:
        return aclq_settings.model_ref(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None


def _options(pairs: tuple[str, ...]) -> dict[str, int]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise click.BadParameter(f"{pair!r} must be NAME=INTEGER, e.g. stream_sync_timeout_ms=200")
        options[key] = int(value)
    return options


def _inputs(pairs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``name=file.npy`` pairs, or one ``file.npz`` whose keys are input names."""
    inputs: dict[str, np.ndarray] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        try:
            if not sep and pair.endswith(".npz"):
                with np.load(pair, allow_pickle=False) as archive:
                    inputs.update({k: archive[k] for k in archive.files})
            elif sep:
                inputs[name] = np.load(path, allow_pickle=False)
            else:
                raise click.BadParameter(f"{pair!r} must be NAME=FILE.npy or FILE.npz")
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{pair!r}: {exc}") from None
    return inputs


class _Commands(click.Group):
    """aclq's own commands, and those a worker host adds through ``aclq.commands`` entry points
    (`aclq worker`, `aclq up`, `aclq devices`), each loaded only when named or listed, so a
    process that only enqueues never imports them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_device_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in _device_commands():
            loaded: click.Command = _device_commands()[name].load()
            return loaded
        return command


def _device_commands() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group="aclq.commands")}


@click.group(cls=_Commands, epilog=f"Commands that run devices need the worker extra: {WORKER_EXTRA}")
@click.version_option(package_version("aclq"), prog_name="aclq")
@click.option("-v", "--verbose", count=True, help="-v info, -vv debug logs")
def main(verbose: int) -> None:
    """aclq: inference jobs through Redis onto accelerator devices."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    keep_message_buffers()


@main.command()
@click.option("--model", "model_ref", required=True, help="NAME or NAME:VERSION")
@click.option("--input", "input_pairs", multiple=True, required=True, help="NAME=FILE.npy, or FILE.npz")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="where to write .npz")
@click.option("--device", type=int, default=None, help="run on this device (default: any free one)")
@click.option("--priority", type=click.IntRange(0, 9), default=0, show_default=True, help="0 first .. 9 last")
@click.option("--option", "option_pairs", multiple=True, help="exec option, e.g. stream_sync_timeout_ms=200")
@click.option("--timeout", "timeout_s", type=float, default=None, help="seconds before the job expires")
def submit(
    model_ref: str,
    input_pairs: tuple[str, ...],
    output: Path,
    device: int | None,
    priority: int,
    option_pairs: tuple[str, ...],
    timeout_s: float | None,
) -> None:
    """Run one job and write its outputs to an .npz file."""
    name, version = _model_ref(model_ref)
    options = _options(option_pairs)  # every argument checked before any file is read
    inputs = _inputs(input_pairs)
    try:
        with Client(Settings.from_env()) as client:
            job = client.submit(
                name, inputs, version=version, options=options, device=device, priority=priority, timeout_s=timeout_s
            )
            outputs = job.result(timeout_s)
    except AclqError as exc:
        raise click.ClickException(str(exc)) from None
    np.savez(output, **outputs)  # type: ignore[arg-type]  # numpy's stub reads **outputs as allow_pickle
    click.echo(f"{job.id}: {', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in outputs.items())} -> {output}")


@main.command()
@click.option("--model", "model_ref", required=True, help="NAME or NAME:VERSION")
@click.option(
    "--input",
    "source",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="a directory of .npy/.npz, one .npy/.npz to split, or a .jsonl manifest",
)
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--batch-size",
    default="auto",
    show_default=True,
    callback=lambda _ctx, _param, value: _batch_size(value),
    help="rows per job when splitting one array; files per job for a directory or manifest (by bytes); "
    "auto: sized from probe jobs so a job's cost beyond its execution stays ~3%",
)
@click.option("--input-name", default="", help="input a .npy feeds (default: the model's only input)")
@click.option(
    "--outfmt",
    type=click.Choice(OUTPUT_FORMATS),
    default=None,
    help="npz: an archive per item (default); npy/bin/txt: a file per output, <item>_<i>.<ext> (ais_bench's)",
)
@click.option(
    "--transfer",
    type=click.Choice(batch_run.TRANSFERS),
    default="auto",
    show_default=True,
    help="ref: workers read inputs and write outputs where they lie; bytes: through Redis; auto: ref when "
    "every worker is on this host",
)
@click.option("--window", type=click.IntRange(1), default=16, show_default=True, help="most jobs in flight")
@click.option("--device", type=int, default=None, help="run on this device (default: any free one)")
@click.option("--resume", is_flag=True, help="skip items whose outputs are already written")
@click.option("--retries", type=click.IntRange(0), default=0, show_default=True, help="retries of transient failures")
@click.option("--option", "option_pairs", multiple=True, help="exec option, e.g. stream_sync_timeout_ms=200")
@click.option("--quiet", is_flag=True, help="log lines instead of a progress bar")
def batch(
    model_ref: str,
    source: Path,
    output: Path,
    batch_size: int | None,
    input_name: str,
    outfmt: str | None,
    transfer: str,
    window: int,
    device: int | None,
    resume: bool,
    retries: int,
    option_pairs: tuple[str, ...],
    quiet: bool,
) -> None:
    """Offline inference: outputs written as they arrive, a JSON summary at the end.

    Exits 1 when any item failed, 130 when interrupted. With no ACLQ_REDIS_URL it starts a
    private Redis and one worker per local device for the run.
    """
    name, version = _model_ref(model_ref)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: finish the jobs in flight, then stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.from_env()
    try:
        # planned first: a bad input is named before any server or worker starts (and with
        # --batch-size auto, this plan's first items are what the probe's jobs carry, their
        # outputs written in the run's format)
        work = batch_run.plan(
            source, output, batch_size=batch_size or batch_run.PROBE_ROWS, input_name=input_name, outfmt=outfmt
        )
        with _broker(settings, model_ref) as ready, Client(ready) as client:
            if transfer == "auto":
                transfer, why = batch_run.choose_transfer(fetch_status(ready).workers, ready.host)
                click.echo(f"aclq batch: transfer {transfer}: {why}", err=True)
            probed: tuple[batch_run.Probed, ...] = ()
            if batch_size is None and transfer == "ref" and not work.splits:
                batch_size = 1
                click.echo("aclq batch: batch size 1: by reference, each file is a job of its own", err=True)
            elif batch_size is None:
                auto = batch_run.auto_batch_size(
                    client, name, work, resume=resume, version=version, options=_options(option_pairs), device=device
                )
                batch_size, probed = auto.size, auto.probed
                click.echo(f"aclq batch: batch size {batch_size}: {auto.why}", err=True)
            work = batch_run.plan(
                source, output, batch_size=batch_size, input_name=input_name, outfmt=outfmt, transfer=transfer
            )
            summary = batch_run.run(
                client, name, work, window=window, retries=retries, resume=resume, quiet=quiet, stop=stop,
                probed=probed, version=version, options=_options(option_pairs), device=device,
            )  # fmt: skip
    except AclqError as exc:
        raise click.ClickException(str(exc)) from None
    batch_run.atomic_write_text(output / batch_run.SUMMARY_FILE, summary.to_json())
    click.echo(summary.to_json())
    _exit_now(130 if summary.interrupted else 1 if summary.failed else 0)


@main.command()
@click.option("--model", "model_ref", required=True, help="NAME or NAME:VERSION")
@click.option("--input", "input_pairs", multiple=True, help="NAME=FILE.npy, or FILE.npz (else generated: --shape)")
@click.option("--shape", "shape_pairs", multiple=True, help="NAME=D0,D1,...: an input generated in this shape")
@click.option("--dtype", default="float32", show_default=True, help="dtype of generated inputs")
@click.option("--loop", type=click.IntRange(1), default=100, show_default=True, help="jobs measured")
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True, help="jobs run first, not measured")
@click.option("--window", type=click.IntRange(1), default=16, show_default=True, help="most jobs in flight")
@click.option("--device", type=int, default=None, help="run on this device (default: any free one)")
@click.option("--option", "option_pairs", multiple=True, help="exec option, e.g. stream_sync_timeout_ms=200")
@click.option("--json", "as_json", is_flag=True, help="the summary as JSON")
def perf(
    model_ref: str,
    input_pairs: tuple[str, ...],
    shape_pairs: tuple[str, ...],
    dtype: str,
    loop: int,
    warmup: int,
    window: int,
    device: int | None,
    option_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Performance only (ais_bench's --loop/--warmup): one input sent LOOP times, throughput and
    latency percentiles per device. With no ACLQ_REDIS_URL it starts a private Redis and workers."""
    name, version = _model_ref(model_ref)
    options = _options(option_pairs)
    inputs = {**_generated(shape_pairs, dtype), **_inputs(input_pairs)}
    if not inputs:
        raise click.BadParameter("give the inputs: --input NAME=FILE.npy, or --shape NAME=D0,D1,... to generate one")
    try:
        with _broker(Settings.from_env(), model_ref) as ready, Client(ready) as client:
            summary = run_perf(
                client, name, inputs, loop=loop, warmup=warmup, window=window,
                version=version, options=options, device=device,
            )  # fmt: skip
    except AclqError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.render())


def _exit_now(code: int) -> NoReturn:
    """End the process once its output is flushed, skipping the interpreter's teardown of every
    module (65-115 ms here, after `aclq batch`'s work is written and its cluster stopped)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _batch_size(value: str | int) -> int | None:
    """``--batch-size``: a whole number of at least 1, or auto (None)."""
    if value == "auto":
        return None
    if not str(value).isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r}: a whole number of at least 1, or auto")
    return int(value)


def _generated(pairs: tuple[str, ...], dtype: str) -> dict[str, np.ndarray]:
    """``NAME=D0,D1,...`` pairs: inputs of those shapes, filled from a fixed seed."""
    try:
        kind = np.dtype(dtype)
    except TypeError as exc:
        raise click.BadParameter(f"--dtype {dtype!r}: {exc}") from None
    inputs = {}
    rng = np.random.default_rng(0)
    for pair in pairs:
        name, _, dims = pair.partition("=")
        if not name or not all(d.strip().isdigit() for d in dims.split(",")):
            raise click.BadParameter(f"--shape {pair!r} must be NAME=D0,D1,... with whole numbers")
        inputs[name] = rng.standard_normal([int(d) for d in dims.split(",")]).astype(kind)
    return inputs


@contextlib.contextmanager
def _broker(settings: Settings, model: str) -> Iterator[Settings]:
    """The settings to use: as given when a broker is configured, else those of the local
    cluster a worker host provides (entry point ``aclq.local_cluster``), whose workers load
    ``model`` (``NAME[:VERSION]``) and run it once as they start (ACLQ_WARMUP_MODELS), before they are ready:
    the load and the slower first run happen while the command waits for them anyway, not in
    the first items."""
    if settings.redis_url:
        yield settings
        return
    providers = entry_points(group="aclq.local_cluster")
    if not providers:
        raise ConfigError(f"no broker configured: set ACLQ_REDIS_URL, or {WORKER_EXTRA} to run a private one")
    warm = replace(settings, warmup_models=",".join(filter(None, [settings.warmup_models, model])))
    with next(iter(providers)).load()(warm) as local:
        yield local


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts")
def status(as_json: bool) -> None:
    """Queues and their depths, live workers and their devices and models, recent throughput."""
    try:
        current = fetch_status(Settings.from_env())
    except AclqError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(current.to_json() if as_json else render(current))


@main.command()
@click.option("--device", type=int, default=None, help="this device's worker (default: any on the host)")
@click.option("--host", default=None, help="the host (default: ACLQ_HOST, i.e. this one)")
def health(device: int | None, host: str | None) -> None:
    """Exit 0 when a ready worker is alive (heartbeat within 15 s), else 1: for healthchecks."""
    settings = Settings.from_env()
    try:
        ready = healthy(fetch_status(settings), host or settings.host, device)
    except AclqError as exc:
        click.echo(f"unhealthy: {exc}", err=True)
        sys.exit(1)
    if not ready:
        click.echo(f"unhealthy: no ready worker for host {host or settings.host} device {device}", err=True)
        sys.exit(1)
    click.echo(f"healthy: {', '.join(str(w.pid) for w in ready)}")


if __name__ == "__main__":
    main()
