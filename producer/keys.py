"""Every Redis key and Celery queue aclq owns, built from one namespace prefix.

| key                          | type   | written by                           | read by              | TTL            |
|-----------------------------|--------|-------------------------------------|----------------------|----------------|
| {ns}:job:{id}:state          | string | producer (queued, NX), worker        | producer (status)    | payload/result |
| {ns}:job:{id}:in             | string | producer (job envelope, NX)          | worker; DEL when done| payload_ttl_s  |
| {ns}:job:{id}:reply          | list   | worker: RENAME of its staging list   | producer (BLMOVE)    | result_ttl_s   |
| {ns}:job:{id}:staging:{run}  | list   | worker (RPUSH result envelope)       | worker finish script | result_ttl_s   |
| {ns}:job:{id}:runs           | string | worker (INCR at each start)          | worker (attempt no.) | payload_ttl_s  |
| {ns}:worker:{name}           | hash   | worker heartbeat (every 5 s)         | `aclq status`, health| 15 s           |
| {ns}:workers:ready           | list   | worker at start (LPUSH name)         | `aclq up`, tests     | none           |
| queue {ns}.host.{h}.device.{n}| list  | producer via Celery (host and device)| that one worker      | (kombu's)      |
| queue {ns}.device.{n}        | list   | producer via Celery (device only)    | device n of any host | (kombu's)      |
| queue {ns}.shared            | list   | producer via Celery                  | every worker         | (kombu's)      |

The reply list holds the one result envelope. Waiters read it with ``BLMOVE reply reply``, which
returns the element and leaves it in place, so any number of readers see the same result.
Celery and kombu own their keys (`unacked`, `unacked_index`, `_kombu.*`). aclq writes one of
them in one way: a worker renews the score of the job it is running in kombu's `unacked_index`
(``ZADD XX``), which is the lease kombu's visibility timeout reads (worker/lease.py).
"""

#: kombu's sorted set of unacknowledged deliveries, scored by delivery time (kombu's default name)
KOMBU_UNACKED_INDEX = "unacked_index"


def job_state(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:state"


def job_input(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:in"


def job_reply(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:reply"


def job_staging(ns: str, job_id: str, run: str) -> str:
    return f"{ns}:job:{job_id}:staging:{run}"


def job_runs(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:runs"


def workers_ready(ns: str) -> str:
    return f"{ns}:workers:ready"


def worker_heartbeat(ns: str, worker: str) -> str:
    return f"{ns}:worker:{worker}"


def host_device_queue(ns: str, host: str, device: int) -> str:
    return f"{ns}.host.{host}.device.{device}"


def device_queue(ns: str, device: int) -> str:
    return f"{ns}.device.{device}"


def shared_queue(ns: str) -> str:
    return f"{ns}.shared"
