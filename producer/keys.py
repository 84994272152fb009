"""Every Redis key and Celery queue aclq owns, built from one namespace prefix.

| key                          | type   | written by                           | read by              | TTL            |
|-----------------------------|--------|-------------------------------------|----------------------|----------------|
| {ns}:job:{id}:state          | string | producer (queued NX; cancelled), worker | producer (status) | payload/result |
| {ns}:job:{id}:in             | string | producer (envelope not inline, NX)   | worker; DEL when done| payload_ttl_s  |
| {ns}:job:{id}:reply          | list   | worker: RENAME of staging; canceller | its waiter (pops it) | result_ttl_s   |
| {ns}:job:{id}:out            | string | worker: RENAME of staging (large)    | its waiter (GETDEL)  | result_ttl_s   |
| {ns}:job:{id}:staging:{run}  | list / string | worker (the result envelope)  | worker finish script | result_ttl_s   |
| {ns}:job:{id}:runs           | hash   | worker: n, run, answered (below)     | worker (attempt no.) | payload_ttl_s  |
| {ns}:inbox:{client}          | list   | worker finish script: id, answer     | that client's reader | result_ttl_s   |
| {ns}:worker:{name}           | hash   | worker heartbeat (every 5 s)         | `aclq status`, health| 15 s           |
| {ns}:workers:ready           | list   | worker at start (LPUSH name)         | `aclq up`, tests     | none           |
| {ns}:deadletter              | list   | worker: entries that are no message  | `aclq status`, people| newest 10,000 |
| {ns}:cancels                 | pubsub | producer: id of a running job it cancelled | workers   | (a channel)    |
| {ns}:failpoint:{name}[:release] | list | worker at a fail point / the test | the test / worker | none (tests only) |
| {queue}:bell                 | list   | producer: a doorbell token per message| worker (BRPOP)      | none           |
| queue {ns}.host.{h}.device.{n}| list  | producer via Celery (host and device)| that one worker      | (kombu's)      |
| queue {ns}.device.{n}        | list   | producer via Celery (device only)    | device n of any host | (kombu's)      |
| queue {ns}.shared            | list   | producer via Celery                  | every worker         | (kombu's)      |

A queue's messages of priority 1-9 are in ``{queue}\\x06\\x16{priority}`` (:func:`queue_key`, kombu's
names), those of priority 0 in ``{queue}``.

``runs`` counts a job's attempts (``n``), the run that claimed it last (``run``) and the run whose
answer won (``answered``), so a claim or answer retried after a lost connection is not counted
twice. A dead letter is msgpack ``{queue, reason, entry, at}`` (producer/transport.py).

The reply list holds the one result envelope until a wait reads it: a result is delivered once,
and the wait that reads it takes it out of Redis (``BLPOP``, or ``LPOP`` when it looks), so
Redis holds the results not yet read, not every result of the last ``result_ttl_s``. The state
stays, final, for ``result_ttl_s``: it, not the reply, says a job is answered. A job submitted
while others of its client are waited for names the client's inbox: once its answer wins, the
finish script pushes the job's id and the answer (or "" where over 64 KiB) there, and the
client's one reader hands the answers to their waits and takes their replies (``UNLINK``, in its
next round trip; ``LPOP`` for those it reads).
An answer over 64 KiB to a job that names ``out`` (``large_reply_key``) is the string ``out``
instead, and the reply list holds an empty element, the marker that says so: the waits that pop
the reply take ``out`` in the same round trip (``GETDEL``). Redis moves a string's megabyte with
two copies fewer than a list element's (docs/performance.md).
Celery and kombu own their keys (`unacked`, `unacked_index`, `_kombu.*`; names set by kombu's
transport options). aclq writes them in three ways: its transport's claim script records a message
there in the same step that pops it (producer/transport.py), a worker renews the score of the
jobs it holds in `unacked_index` (``ZADD XX CH``), which is the lease kombu's visibility timeout
reads (worker/lease.py), and a worker's answer removes its messages from both (kombu's ack,
sent with the answer: worker/executor.py).
"""


def job_state(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:state"


def job_input(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:in"


def job_reply(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:reply"


def job_out(ns: str, job_id: str) -> str:
    """A job's answer when over NOTICE_ANSWER_MAX, as a string (its reply list holds a marker)."""
    return f"{ns}:job:{job_id}:out"


def job_staging(ns: str, job_id: str, run: str) -> str:
    return f"{ns}:job:{job_id}:staging:{run}"


def job_runs(ns: str, job_id: str) -> str:
    return f"{ns}:job:{job_id}:runs"


def client_inbox(ns: str, client: str) -> str:
    """Where workers notice a client's answered jobs (id, answer); ``client`` is hex (a UUID's)."""
    return f"{ns}:inbox:{client}"


def is_client_inbox(ns: str, key: str) -> bool:
    """Whether ``key`` is a client's inbox of namespace ``ns``: a job may name no other key for
    its worker to push to."""
    client = key.removeprefix(client_inbox(ns, ""))
    return client != key and client.isalnum() and client.isascii()


def job_cancels(ns: str) -> str:
    """The channel a cancelled job's id is published on, for the worker executing it."""
    return f"{ns}:cancels"


def dead_letter(ns: str) -> str:
    return f"{ns}:deadletter"


#: what kombu's Redis channel puts between a queue's name and a priority level above 0
#: (``kombu.transport.redis.Channel.sep``; tests/integration/test_transport.py holds it to kombu's)
PRIORITY_SEP = "\x06\x16"


def queue_key(queue: str, priority: int) -> str:
    """The Redis list holding ``queue``'s messages of ``priority`` (0..9), as kombu names it with
    aclq's ``priority_steps`` of every level."""
    return f"{queue}{PRIORITY_SEP}{priority}" if priority else queue


def queue_bell(queue: str) -> str:
    """The doorbell list of a queue: one token a message, which the queue's workers wait on."""
    return f"{queue}:bell"


def failpoint(ns: str, name: str) -> str:
    """Where a worker stopped at fail point ``name`` pushes its pid (worker/failpoints.py; tests only)."""
    return f"{ns}:failpoint:{name}"


def failpoint_release(ns: str, name: str) -> str:
    return f"{ns}:failpoint:{name}:release"


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
