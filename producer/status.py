"""What `aclq status` and `aclq health` read: queue depths and the workers' heartbeats."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from producer import keys
from producer.dispatch import REDIS_OPTIONS
from producer.errors import BrokerConnectionError
from producer.settings import Settings

#: kombu keeps priority levels above 0 in lists named queue + this separator + level
KOMBU_PRIORITY_SEP = "\x06\x16"


@dataclass
class Status:
    queues: dict[str, int] = field(default_factory=dict)  #: name -> jobs waiting (all priorities)
    workers: list[dict[str, Any]] = field(default_factory=list)
    recent_s: float = 60.0
    throughput_per_s: float = 0.0  #: jobs answered per second over the last recent_s, all workers
    error_rate: float = 0.0  #: share of those that failed
    dead_letters: int = 0  #: queue entries that were not messages, kept in the list dead_letter_key
    dead_letter_key: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        text = value.decode()
        try:
            out[key.decode()] = json.loads(text)
        except ValueError:
            out[key.decode()] = text
    return out


def read_status(client: redis.Redis, settings: Settings) -> Status:
    ns = settings.namespace
    status = Status()
    for key in client.scan_iter(match=f"{ns}.*", count=1000, _type="list"):
        if b":" in key:  # a queue's doorbell (keys.queue_bell): queue names hold no ':'
            continue
        name = key.decode().split(KOMBU_PRIORITY_SEP)[0]
        status.queues[name] = status.queues.get(name, 0) + int(client.llen(key))
    heartbeats = sorted(client.scan_iter(match=keys.worker_heartbeat(ns, "*"), count=1000))
    status.workers = [w for w in (_decode(client.hgetall(k)) for k in heartbeats) if w]
    for worker in status.workers:  # queues that are empty have no list in Redis: show them at 0
        for name in filter(None, str(worker.get("queues", "")).split(",")):
            status.queues.setdefault(name, 0)
    status.queues = dict(sorted(status.queues.items()))
    status.dead_letter_key = keys.dead_letter(ns)
    status.dead_letters = int(client.llen(status.dead_letter_key))
    if status.workers:
        status.recent_s = float(status.workers[0].get("recent_s", 60))
    done = sum(int(w.get("done_recent", 0)) for w in status.workers)
    failed = sum(int(w.get("failed_recent", 0)) for w in status.workers)
    status.throughput_per_s = round((done + failed) / status.recent_s, 2)
    status.error_rate = round(failed / (done + failed), 4) if done + failed else 0.0
    return status


def fetch_status(settings: Settings) -> Status:
    """:func:`read_status` over a connection of its own; Redis errors as BrokerConnectionError."""
    try:
        with redis.Redis.from_url(settings.require_url(), **REDIS_OPTIONS) as client:
            return read_status(client, settings)
    except redis.RedisError as exc:
        raise BrokerConnectionError(f"Redis at {settings.safe_url()}: {exc}") from None


def render(status: Status) -> str:
    """The readable table of `aclq status`."""
    lines = ["QUEUE" + " " * 35 + "WAITING"]
    lines += [f"{name:<40}{depth:>7}" for name, depth in status.queues.items()] or ["(no queue has jobs yet)"]
    lines += ["", f"{'WORKER':<36} {'DEV':>3}  {'PROVIDER':<22} {'STATE':<8} {'DONE':>7} {'FAILED':>6}  MODELS"]
    for w in status.workers:
        state = "ready" if w.get("ready") else "starting"
        name = f"{w.get('host')}/pid{w.get('pid')}"
        lines.append(
            f"{name:<36} {w.get('device')!s:>3}  {w.get('provider', '')!s:<22} {state:<8} "
            f"{w.get('done', 0)!s:>7} {w.get('failed', 0)!s:>6}  {w.get('models') or '-'}"
        )
    if not status.workers:
        lines.append("(no live worker)")
    if status.dead_letters:
        lines += ["", f"dead letters: {status.dead_letters} queue entries were not messages ({status.dead_letter_key})"]
    lines += ["", f"last {status.recent_s:g} s: {status.throughput_per_s:g} jobs/s, error rate {status.error_rate:.1%}"]
    return "\n".join(lines)


def healthy(status: Status, host: str, device: int | None) -> list[dict[str, Any]]:
    """The ready workers of ``host`` (on ``device``, when given)."""
    return [
        w
        for w in status.workers
        if w.get("host") == host and w.get("ready") and (device is None or w.get("device") == device)
    ]
