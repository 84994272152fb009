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

# ACL's values for the codes the client side answers itself (wire layer, batch input files).
# Repeated here because the producer must not import acl_core; tests/unit/producer/test_wire.py
# asserts they equal acl_core.codes.
#: what a host that runs devices installs, named by every error that needs it
WORKER_EXTRA: Final = "pip install 'aclq[worker]'"

ACL_ERROR_INVALID_PARAM: Final = 100000
ACL_ERROR_INVALID_FILE: Final = 100003
ACL_ERROR_UNSUPPORTED_DATA_TYPE: Final = 100026
ACL_ERROR_STORAGE_OVER_LIMIT: Final = 300000
_NAMES: Final = {
    ACL_ERROR_INVALID_PARAM: "ACL_ERROR_INVALID_PARAM",
    ACL_ERROR_INVALID_FILE: "ACL_ERROR_INVALID_FILE",
    ACL_ERROR_UNSUPPORTED_DATA_TYPE: "ACL_ERROR_UNSUPPORTED_DATA_TYPE",
    ACL_ERROR_STORAGE_OVER_LIMIT: "ACL_ERROR_STORAGE_OVER_LIMIT",
}


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
        super().__init__(code, _NAMES[code], message)


class JobFailed(_Coded):
    """The worker answered the job with an error; ``code`` and ``name`` are ACL's."""

    def __init__(self, job_id: str, code: int, name: str, message: str) -> None:
        self.job_id = job_id
        super().__init__(code, name, message)


class JobTimeout(AclqError):
    """The client gave up waiting for a result; the job may still run."""


class JobNotFound(AclqError):
    """No such job, or its result has expired."""
