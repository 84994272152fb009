"""The exceptions of aclq's client side. The producer never imports acl_core.

::

    AclqError                    every aclq client error
    ├── ConfigError              a setting is missing or malformed
    ├── BrokerConnectionError    Redis could not be reached (wraps redis' own errors)
    ├── WireError                a message could not be encoded or decoded; .code, .name (ACL's)
    ├── JobFailed                the worker answered with an error; .code, .name, .message (ACL's)
    ├── JobTimeout               the client stopped waiting (not an ACL device timeout)
    └── JobNotFound              no such job, or its result expired
"""

from typing import Final

from producer import codes

#: what a host that runs devices installs, named by every error that needs it
WORKER_EXTRA: Final = "pip install 'aclq[worker]'"


class AclqError(Exception):
    """Root of aclq's client errors."""


class ConfigError(AclqError):
    """A setting is missing or malformed."""


class BrokerConnectionError(AclqError):
    """Redis could not be reached or refused the command."""


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


class JobNotFound(AclqError):
    """No such job, or its result has expired."""
