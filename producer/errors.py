"""The exceptions of aclq's client side. The producer never imports acl_core.

::

    AclqError                    every aclq client error
    ├── ConfigError              a setting is missing or malformed
    ├── BrokerError              Redis did not take a command (wraps redis' and kombu's errors)
    │   ├── BrokerConnectionError    Redis could not be reached
    │   ├── BrokerAuthError          Redis wants a password, or refused the one given
    │   └── BrokerFullError          Redis is at its maxmemory and refuses writes
    ├── WireError                a message could not be encoded or decoded; .code, .name (ACL's)
    ├── JobFailed                the worker answered with an error; .code, .name, .message (ACL's)
    ├── JobTimeout               the client stopped waiting (not an ACL device timeout)
    ├── JobCancelled             the job was cancelled (Job.cancel) before its answer
    └── JobNotFound              no such job, or its result expired
        └── ResultTaken          answered, and its result read already by a wait (delivered once)
"""

from typing import Final
from urllib.parse import urlsplit

import redis

from producer import codes

#: what a host that runs devices installs, named by every error that needs it
WORKER_EXTRA: Final = "pip install 'aclq[worker]'"


class AclqError(Exception):
    """Root of aclq's client errors."""


class ConfigError(AclqError):
    """A setting is missing or malformed."""


class BrokerError(AclqError):
    """Redis did not take a command; the subclasses name the causes a user can act on."""


class BrokerConnectionError(BrokerError):
    """Redis could not be reached (or dropped the connection)."""


class BrokerAuthError(BrokerError):
    """Redis requires authentication, or refused the credentials in the URL."""


class BrokerFullError(BrokerError):
    """Redis is at its ``maxmemory`` and refuses to store more."""


def broker_error(exc: BaseException, url: str, safe_url: str) -> BrokerError:
    """The aclq error for a Redis error (or kombu's wrapping of one), by cause. Its message names
    the cause and the fix, never a command's arguments: redis-py quotes a failed pipeline
    command, payload bytes included, and that part is dropped."""
    cause = exc
    if not isinstance(exc, redis.RedisError):  # kombu's OperationalError raised from redis' own
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, redis.RedisError):
            cause = inner
    text = str(cause).split("caused error: ", 1)[-1]
    if isinstance(cause, redis.AuthenticationError | redis.exceptions.AuthenticationWrongNumberOfArgsError):
        if urlsplit(url).password is None:
            fix = "it requires a password: give it in ACLQ_REDIS_URL as redis://:PASSWORD@host:port/db"
        else:
            fix = "it refused the user or password in ACLQ_REDIS_URL"
        return BrokerAuthError(f"Redis at {safe_url}: {fix} (Redis said: {text})")
    if isinstance(cause, redis.exceptions.OutOfMemoryError):
        return BrokerFullError(
            f"Redis at {safe_url} is full (its maxmemory) and refuses new data: raise maxmemory, or keep less "
            f"(fewer jobs in flight, a shorter ACLQ_RESULT_TTL_S / ACLQ_PAYLOAD_TTL_S)"
        )
    if isinstance(cause, redis.ConnectionError | redis.TimeoutError) or not isinstance(cause, redis.RedisError):
        return BrokerConnectionError(f"Redis at {safe_url}: {text}")
    return BrokerError(f"Redis at {safe_url} refused a command: {text}")


class _Coded(AclqError):
    def __init__(self, code: int, name: str, message: str) -> None:
        self.code, self.name, self.message = code, name, message
        super().__init__(f"[{code} {name}] {message}")


class WireError(_Coded):
    """A message is malformed; carries the ACL code it is answered with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, codes.NAMES[code], message)


class JobFailed(_Coded):
    """The worker answered the job with an error; ``code`` and ``name`` are ACL's."""

    def __init__(self, job_id: str, code: int, name: str, message: str) -> None:
        self.job_id = job_id
        super().__init__(code, name, message)


class JobTimeout(AclqError):
    """The client gave up waiting for a result; the job may still run."""


class JobCancelled(AclqError):
    """The job was cancelled before it was answered: it has no outputs."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


class JobNotFound(AclqError):
    """No such job, or its result has expired."""


class ResultTaken(JobNotFound):
    """The job was answered, and a wait read its result already: a result is delivered once
    (the wait that reads it takes it out of Redis; the job's state stays). The handle that read
    it keeps it: its ``result()`` and ``details()`` return it again."""

    def __init__(self, job_id: str, status: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} is {status}, and its result was read already: a result is delivered once")
