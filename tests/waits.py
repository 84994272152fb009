"""Waits in progress, for tests of how a client is answered: a job waited for in another thread,
either client (``SyncedAsyncClient`` wraps the async one)."""

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from producer import JobCancelled


def core(client: Any) -> Any:
    """The client's sans-I/O core (its inbox, its count of waits in progress)."""
    return client._client._core if hasattr(client, "_client") else client._core


def in_progress(client: Any, job: Any) -> bool:
    """Whether ``job``'s wait is in progress: registered in the inbox where the job names it."""
    if (job._job if hasattr(job, "_job") else job)._notified:
        return job.id in core(client).inbox.waits
    return bool(core(client).waits)


@contextlib.contextmanager
def waited_for(client: Any, job: Any, wait: Callable[[Any], Any] = lambda job: job.result(60)) -> Iterator[Future]:
    """``job`` waited for by ``wait`` in another thread, its wait in progress; the wait's future."""
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(wait, job)
        while not in_progress(client, job):
            assert not waiting.done(), waiting.exception()
            time.sleep(0.001)
        yield waiting


@contextlib.contextmanager
def another_wait(client: Any, job: Any, wait: Callable[[Any], Any] = lambda job: job.result(60)) -> Iterator[None]:
    """A wait of the client in progress throughout, for ``job`` (one nobody runs), so that the
    jobs the client sends meanwhile name its inbox; the job is cancelled after."""
    with waited_for(client, job, wait) as waiting:
        try:
            yield
        finally:
            job.cancel()
            with pytest.raises(JobCancelled):
                waiting.result(60)


def until_keys(r: Any, keys: list[str], present: bool) -> None:
    """Until every key of ``keys`` exists (``present``) or none does: Redis' keyspace events for
    generic commands and expiry (a reply's RENAME into place, its UNLINK, last pop or expiry),
    not a sleep."""
    r.config_set("notify-keyspace-events", "Egx")
    with r.pubsub() as sub:
        sub.psubscribe("__keyevent@0__:*")
        while any(bool(r.exists(key)) != present for key in keys):
            sub.get_message(timeout=0.5)


def blocked_on_reply(r: Any) -> bool:
    """Whether some client of Redis ``r`` is blocked waiting for a job's reply (a wait by its own
    ``BLPOP``; Redis has no event for it, so callers poll this)."""
    return any(c["cmd"] == "blpop" for c in r.client_list())
