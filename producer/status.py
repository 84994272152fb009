"""What `aclq status` and `aclq health` read: queue depths and the workers' heartbeats."""

import json
from dataclasses import asdict, dataclass, field

import redis

from producer import keys
from producer.connection import redis_client
from producer.errors import WireError, broker_error
from producer.settings import Settings
from producer.wire import WorkerBeat

#: kombu keeps priority levels above 0 in lists named queue + this separator + level
KOMBU_PRIORITY_SEP = "\x06\x16"


@dataclass
class Status:
    queues: dict[str, int] = field(default_factory=dict)  #: name -> jobs waiting (all priorities)
    workers: list[WorkerBeat] = field(default_factory=list)
    #: heartbeat key -> why it cannot be read (a worker of another version, a stray key)
    unreadable: dict[str, str] = field(default_factory=dict)
    recent_s: float = 60.0
    throughput_per_s: float = 0.0  #: jobs answered per second over the last recent_s, all workers
    error_rate: float = 0.0  #: share of those that failed
    dead_letters: int = 0  #: queue entries that were not messages, kept in the list dead_letter_key
    dead_letter_key: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def read_status(client: redis.Redis, settings: Settings) -> Status:
    ns = settings.namespace
    status = Status()
    for key in client.scan_iter(match=f"{ns}.*", count=1000, _type="list"):
        if b":" in key:  # a queue's doorbell (keys.queue_bell): queue names hold no ':'
            continue
        name = key.decode().split(KOMBU_PRIORITY_SEP)[0]
        status.queues[name] = status.queues.get(name, 0) + int(client.llen(key))
    for key in sorted(client.scan_iter(match=keys.worker_heartbeat(ns, "*"), count=1000)):
        raw: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]  # bytes: no decode_responses
        if not raw:  # expired between the scan and the read
            continue
        try:
            status.workers.append(WorkerBeat.decode(raw))
        except WireError as exc:
            status.unreadable[key.decode("utf-8", "replace")] = exc.message
    for worker in status.workers:  # queues that are empty have no list in Redis: show them at 0
        for name in worker.queues:
            status.queues.setdefault(name, 0)
    status.queues = dict(sorted(status.queues.items()))
    status.dead_letter_key = keys.dead_letter(ns)
    status.dead_letters = int(client.llen(status.dead_letter_key))
    if status.workers:
        status.recent_s = status.workers[0].recent_s
    done = sum(w.done_recent for w in status.workers)
    failed = sum(w.failed_recent for w in status.workers)
    status.throughput_per_s = round((done + failed) / status.recent_s, 2)
    status.error_rate = round(failed / (done + failed), 4) if done + failed else 0.0
    return status


def fetch_status(settings: Settings) -> Status:
    """:func:`read_status` over a connection of its own; Redis errors as BrokerError, by cause."""
    try:
        with redis_client(settings) as client:
            return read_status(client, settings)
    except redis.RedisError as exc:
        raise broker_error(exc, settings.require_url(), settings.safe_url()) from None


def render(status: Status) -> str:
    """The readable table of `aclq status`."""
    lines = ["QUEUE" + " " * 35 + "WAITING"]
    lines += [f"{name:<40}{depth:>7}" for name, depth in status.queues.items()] or ["(no queue has jobs yet)"]
    lines += ["", f"{'WORKER':<36} {'DEV':>3}  {'PROVIDER':<22} {'STATE':<8} {'DONE':>7} {'FAILED':>6}  MODELS"]
    for w in status.workers:
        state = "ready" if w.ready else "starting"
        lines.append(
            f"{w.host + '/pid' + str(w.pid):<36} {w.device:>3}  {w.provider:<22} {state:<8} "
            f"{w.done:>7} {w.failed:>6}  {','.join(w.models) or '-'}"
        )
    if not status.workers:
        lines.append("(no live worker)")
    lines += [f"unreadable heartbeat {key}: {why}" for key, why in status.unreadable.items()]
    broken = sorted({(version, w.name) for w in status.workers for version in w.broken})
    if broken:
        lines.append("")
        lines += [
            f"model {version} failed to load on {worker}; it serves the highest version that loads (see its log)"
            for version, worker in broken
        ]
    if status.dead_letters:
        lines += ["", f"dead letters: {status.dead_letters} queue entries were not messages ({status.dead_letter_key})"]
    lines += ["", f"last {status.recent_s:g} s: {status.throughput_per_s:g} jobs/s, error rate {status.error_rate:.1%}"]
    return "\n".join(lines)


def healthy(status: Status, host: str, device: int | None) -> list[WorkerBeat]:
    """The ready workers of ``host`` (on ``device``, when given)."""
    return [w for w in status.workers if w.host == host and w.ready and (device is None or w.device == device)]
