"""A local cluster: the embedded Redis (when no broker is configured) and one worker per device.

Used by `aclq up`, the demo, `aclq batch` and the integration tests.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import redis

from producer import keys
from producer.connection import redis_client
from producer.errors import ConfigError
from producer.settings import Settings
from worker.embedded import RedisServer, die_with_parent

log = logging.getLogger(__name__)
#: seconds to wait for every worker to report ready
READY_TIMEOUT_S = 120
#: seconds a stopping worker gets to finish its job before it is killed
STOP_TIMEOUT_S = 30


def device_count() -> int:
    """How many devices this host's runtime exposes (acl_core: ACLQ_PROVIDER, ACLQ_DEVICE_COUNT)."""
    from acl_core import acl

    acl.init()
    count, ret = acl.rt.get_device_count()
    if ret:
        raise ConfigError(f"the runtime reports no devices: {acl.get_recent_err_msg()}")
    acl.finalize()
    return int(count)


def _stop(processes: list[subprocess.Popen[bytes]], sig: signal.Signals) -> None:
    """Signal every process first, then wait for each (STOP_TIMEOUT_S in all, then SIGKILL)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalCluster:
    """``with LocalCluster(settings, devices=[0, 1]) as cluster: Client(cluster.settings)``."""

    def __init__(self, settings: Settings, devices: list[int] | None = None, *, loglevel: str = "WARNING") -> None:
        self._given = settings
        self.settings = settings
        self.devices = devices
        self.loglevel = loglevel
        self.server: RedisServer | None = None
        self.workers: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> "LocalCluster":
        if self._given.redis_url is None:
            self.server = RedisServer().start()
            self.settings = replace(self._given, redis_url=self.server.url)
        if self.devices is None:
            self.devices = list(range(device_count()))
        self.start_workers(self.devices)
        return self

    def start_workers(self, devices: list[int]) -> None:
        """Start the workers of ``devices`` and block until every one of them consumes."""
        client = redis_client(self.settings)
        client.delete(keys.workers_ready(self.settings.namespace))
        for device in devices:
            self.start_worker(device)
        self.wait_ready(client, len(devices))

    def start_worker(self, device: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start the worker of ``device`` (``env``: variables of its own, e.g. a fail point).

        It ends when this process ends, however it ends: with SIGTERM (a warm shutdown: its job
        finishes and is answered) on a broker of the user's; with SIGKILL on the embedded
        server, which ends too and takes every job with it, so a warm shutdown would only wait
        for a Redis that is gone."""
        env = {**os.environ, **self.settings.to_env(), **(env or {})}
        command = [sys.executable, "-m", "worker", "--device", str(device), "--loglevel", self.loglevel, "--quiet"]
        # stdout too goes to stderr: a command like `aclq batch` keeps stdout for its JSON summary
        on_parent_death = signal.SIGKILL if self.server is not None else signal.SIGTERM
        process = subprocess.Popen(command, env=env, stdout=2, preexec_fn=die_with_parent(on_parent_death))
        self.workers[device] = process
        return process

    def wait_ready(self, client: redis.Redis, count: int) -> None:
        """Block until ``count`` workers have announced themselves (or one of them died)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for _ in range(count):
            while not client.blpop([keys.workers_ready(self.settings.namespace)], timeout=1):
                dead = {d: p.returncode for d, p in self.workers.items() if p.poll() is not None}
                if dead or time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(f"workers did not start: exited {dead}" if dead else "workers did not start")

    def stop_worker(self, device: int) -> None:
        """Celery's warm shutdown of one worker: its current job finishes and is answered."""
        _stop([self.workers.pop(device)], signal.SIGTERM)

    def stop(self) -> None:
        """Stop every worker at once, then the private server. On a broker of the user's, each
        gets a warm shutdown (its current job finishes and is answered: about a second, most of
        it its wait on Redis ending); with the private server, SIGKILL, the server's too: whatever
        they would still write would go into a server that is about to stop and keeps nothing."""
        processes, self.workers = list(self.workers.values()), {}
        _stop(processes, signal.SIGKILL if self.server is not None else signal.SIGTERM)
        if self.server is not None:
            self.server.kill()  # it keeps nothing: its shutdown (65-125 ms) would only delay the exit
            self.server.close()
            self.server = None

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
