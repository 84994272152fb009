"""aclq's settings: one dataclass, built from ``ACLQ_*`` environment variables or arguments.

Every process (producer, worker, `aclq up`) reads its configuration here and nowhere else, and
passes the object on explicitly; there is no global client.
"""

import difflib
import os
import re
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from producer.errors import ConfigError

#: Redis namespace prefix of every key and queue aclq owns
DEFAULT_NAMESPACE = "aclq"
#: seconds a job's input payload lives in Redis if no worker takes it
DEFAULT_PAYLOAD_TTL_S = 3600
#: seconds a result stays readable after the worker pushes it
DEFAULT_RESULT_TTL_S = 3600
#: hard limit on one job's execution, seconds; the worker process running it is replaced after
DEFAULT_TASK_TIME_LIMIT_S = 300
#: seconds before Redis hands a job held by a worker that stopped renewing it to another
#: worker; running jobs renew it (worker/lease.py), so only a dead worker's jobs come back
DEFAULT_VISIBILITY_TIMEOUT_S = 30
#: largest job or result message, MiB, checked on both sides
DEFAULT_MAX_MESSAGE_MB = 512
#: largest job envelope, KiB, that travels inside its Celery message instead of under its own
#: key (docs/wire-format.md, "Inline or by claim check"); 0 = every job by claim check
DEFAULT_INLINE_MAX_KB = 4
#: most jobs of concurrent ``submit``s of one client that share a Celery message; 1 = a message
#: each (docs/wire-format.md)
DEFAULT_COALESCE_MAX_JOBS = 16
#: port of a Sentinel whose URL names none
SENTINEL_DEFAULT_PORT = 26379
#: memory budget for a worker's loaded models, MiB (LRU eviction beyond it)
DEFAULT_MODEL_CACHE_MB = 4096
#: ``ACLQ_*`` variables read elsewhere: acl_core's RuntimeConfig (a test derives these from its
#: fields) and the worker's fail points (tests only)
OTHER_VARIABLES = frozenset(
    {
        "ACLQ_BACKEND",
        "ACLQ_PROVIDER",
        "ACLQ_DEVICE_COUNT",
        "ACLQ_DEVICE_MEMORY_MB",
        "ACLQ_GRAPH_CACHE_DIR",
        "ACLQ_FAILPOINT",
    }
)


@dataclass(frozen=True)
class SentinelTarget:
    """A Redis primary found through Redis Sentinel: what a ``sentinel://`` ACLQ_REDIS_URL says.

    ``sentinel://[[USER]:PASSWORD@]HOST[:PORT][;sentinel://HOST[:PORT]...][/DB]?master_name=NAME``:
    the sentinels, kombu's way (``;`` between them); the user and password are the primary's
    (and its replicas'), the database and master name are given once, on any part.
    """

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "SentinelTarget":
        parts = [urlsplit(part) for part in url.split(";")]
        others = sorted({p.scheme or "(none)" for p in parts if p.scheme != "sentinel"})
        if others:
            raise ConfigError(
                f"ACLQ_REDIS_URL mixes sentinel:// with {', '.join(others)}: list only sentinels, "
                f"sentinel://HOST:PORT;sentinel://HOST:PORT/DB?master_name=NAME"
            )
        names = {name for p in parts for name in parse_qs(p.query).get("master_name", [])}
        if len(names) != 1:
            problem = "names no master" if not names else f"names several masters ({', '.join(sorted(names))})"
            raise ConfigError(f"ACLQ_REDIS_URL {problem}: add ?master_name=NAME, the name the sentinels monitor")
        dbs = {p.path.strip("/") for p in parts if p.path.strip("/")}
        if len(dbs) > 1 or not all(db.isdigit() for db in dbs):
            raise ConfigError(f"ACLQ_REDIS_URL gives database {', '.join(sorted(dbs))}: give one number, once")
        try:
            sentinels = tuple((p.hostname or "", p.port or SENTINEL_DEFAULT_PORT) for p in parts)
        except ValueError as exc:  # a port that is not a number
            raise ConfigError(f"ACLQ_REDIS_URL: {exc}") from None
        if not all(host for host, _ in sentinels):
            raise ConfigError("ACLQ_REDIS_URL names a sentinel without a host")
        auth = next((p for p in parts if p.password is not None or p.username), None)
        return cls(
            sentinels, names.pop(), int(dbs.pop()) if dbs else 0,
            auth.username or None if auth else None, auth.password if auth else None,
        )  # fmt: skip

    def broker_url(self) -> str:
        """The URL kombu's Sentinel transport takes (its master name goes in transport options)."""
        auth = f"{self.username or ''}:{self.password}@" if self.password is not None else ""
        return ";".join(f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.sentinels)

    def addresses(self) -> str:
        return ", ".join(f"{host}:{port}" for host, port in self.sentinels)


def model_ref(value: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION`` as (name, version or None); ValueError saying what is wrong
    (whether the name is a valid one is the worker's to say, with its ACL code)."""
    name, _, version = value.partition(":")
    if version and not version.isdigit():
        raise ValueError("the version after ':' must be a number")
    if not name:
        raise ValueError("a model name is needed before ':'")
    return name, int(version) if version else None


@dataclass(frozen=True)
class Settings:
    """Where Redis is and how aclq uses it. Each field has an ``ACLQ_<FIELD>`` variable.

    ``redis_url`` None means "no broker configured": commands that can (``aclq up``, the demo,
    ``aclq batch``) then start an embedded server. ``redis://`` and ``rediss://`` (TLS) URLs
    with passwords work, and ``sentinel://`` ones (:class:`SentinelTarget`): every aclq client,
    kombu's included, then follows the primary the sentinels name. :meth:`safe_url` is the
    form that may be logged.
    """

    redis_url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    model_repo: str = "examples/model_repo"
    #: device a worker process binds (``aclq worker --device N`` sets it); how many devices
    #: there are is acl_core's to say (``ACLQ_DEVICE_COUNT``, docs/acl_core.md)
    device: int = 0
    #: this host's name in queue names and status: device N of host H is queue {ns}.host.H.device.N
    host: str = field(default_factory=lambda: re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0]))
    #: port of a worker's Prometheus endpoint; 0 = no endpoint
    metrics_port: int = 0
    payload_ttl_s: int = DEFAULT_PAYLOAD_TTL_S
    result_ttl_s: int = DEFAULT_RESULT_TTL_S
    task_time_limit_s: int = DEFAULT_TASK_TIME_LIMIT_S
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S
    max_message_mb: int = DEFAULT_MAX_MESSAGE_MB
    model_cache_mb: int = DEFAULT_MODEL_CACHE_MB
    inline_max_kb: int = DEFAULT_INLINE_MAX_KB
    coalesce_max_jobs: int = DEFAULT_COALESCE_MAX_JOBS
    #: models a worker loads and runs once before it is ready, besides those whose config.json
    #: asks for warm-up: ``NAME`` or ``NAME:VERSION``, comma-separated
    warmup_models: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides: Any) -> "Settings":
        """Settings from ``ACLQ_*`` variables; keyword arguments win over the environment."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ACLQ_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.type in ("int", int):
                if not re.fullmatch(r"\d+", raw.strip()):
                    raise ConfigError(f"ACLQ_{f.name.upper()}={raw!r} must be a non-negative integer")
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        settings = replace(cls(**values), **overrides)
        settings.check()
        warn_unknown_variables(env)
        return settings

    def check(self) -> None:
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in (
            "redis",
            "rediss",
            "unix",
            "sentinel",
        ):
            raise ConfigError(f"ACLQ_REDIS_URL {self.safe_url()!r} must be redis://, rediss://, unix:// or sentinel://")
        self.sentinel()  # a bad Sentinel URL fails here
        if self.visibility_timeout_s < 2:
            raise ConfigError(f"ACLQ_VISIBILITY_TIMEOUT_S={self.visibility_timeout_s} must be at least 2")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.host):
            raise ConfigError(f"ACLQ_HOST {self.host!r} must be 1-64 letters, digits, '_' or '-'")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.namespace):
            raise ConfigError(f"ACLQ_NAMESPACE {self.namespace!r} must be 1-64 letters, digits, '_', '.', '-'")
        self.warmup_refs()  # a malformed list fails here

    def warmup_refs(self) -> list[tuple[str, int | None]]:
        """``warmup_models`` as (name, version or None); whether a name exists is the worker's
        to find (it logs each that cannot be warmed up, and serves on)."""
        refs = []
        for entry in filter(None, (e.strip() for e in self.warmup_models.split(","))):
            try:
                refs.append(model_ref(entry))
            except ValueError as exc:
                raise ConfigError(f"ACLQ_WARMUP_MODELS: {entry!r}: {exc}") from None
        return refs

    def to_env(self) -> dict[str, str]:
        """The ``ACLQ_*`` variables that rebuild these settings in another process."""
        return {
            f"ACLQ_{f.name.upper()}": str(getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) is not None
        }

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb << 20

    @property
    def inline_max_bytes(self) -> int:
        return self.inline_max_kb << 10

    def sentinel(self) -> SentinelTarget | None:
        """Where the sentinels are, when ``redis_url`` is a ``sentinel://`` URL."""
        if self.redis_url is None or "sentinel://" not in self.redis_url:
            return None
        return SentinelTarget.parse(self.redis_url)

    def safe_url(self) -> str:
        """The Redis URL with any password masked, fit for logs and errors."""
        if not self.redis_url:
            return "(none)"
        return ";".join(_masked(part) for part in self.redis_url.split(";"))

    def require_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("no broker configured: set ACLQ_REDIS_URL (or run `aclq up`)")
        return self.redis_url


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


class UnknownSettingWarning(UserWarning):
    """An ``ACLQ_*`` environment variable that no part of aclq reads."""


def known_variables() -> frozenset[str]:
    """Every ``ACLQ_*`` variable aclq reads."""
    return frozenset(f"ACLQ_{f.name.upper()}" for f in fields(Settings)) | OTHER_VARIABLES


def warn_unknown_variables(env: Mapping[str, str]) -> None:
    """A warning for each ``ACLQ_*`` variable aclq does not read (a typo would otherwise be
    ignored without a word), naming the closest known ones."""
    known = known_variables()
    for name in sorted(n for n in env if n.startswith("ACLQ_") and n not in known):
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        warnings.warn(f"{name} is not an aclq setting and is ignored{hint}", UnknownSettingWarning, stacklevel=3)
