"""aclq's client side: enqueue jobs through Redis and wait for results.

Imports neither acl_core nor onnxruntime: an application that only enqueues needs celery,
redis, msgpack and numpy.
"""

from producer.client import AsyncClient, AsyncJob, Client, Job, SubmitOptions
from producer.errors import (
    AclqError,
    BrokerAuthError,
    BrokerConnectionError,
    BrokerError,
    BrokerFullError,
    ConfigError,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobTimeout,
    ResultTaken,
    WireError,
)
from producer.settings import Settings
from producer.wire import InputRef, JobStatus, OutputRef

__all__ = [
    # clients
    "Client",
    "AsyncClient",
    "Job",
    "AsyncJob",
    "JobStatus",
    "SubmitOptions",
    "InputRef",
    "OutputRef",
    "Settings",
    # errors
    "AclqError",
    "ConfigError",
    "BrokerError",
    "BrokerConnectionError",
    "BrokerAuthError",
    "BrokerFullError",
    "WireError",
    "JobFailed",
    "JobCancelled",
    "JobTimeout",
    "JobNotFound",
    "ResultTaken",
]
