"""What a worker's messages would give its executor, for tests that run an executor in-process."""

import msgpack
import redis

from producer import Client, keys
from producer.transport import decode_entry
from producer.wire import PRIORITIES, TaskMessage


def take_queued(client: Client) -> dict[str, bytes | None]:
    """Take every message off the client's shared queue (all priorities): each job id with its
    inline envelope (None: its payload waits under keys.job_input), as the infer task would pass
    them."""
    server: redis.Redis = client._redis
    queue_keys = [keys.queue_key(keys.shared_queue(client.settings.namespace), p) for p in PRIORITIES]
    with server.pipeline(transaction=True) as pipe:
        for key in queue_keys:
            pipe.lrange(key, 0, -1)
        pipe.delete(*queue_keys)
        *entries, _ = pipe.execute()
    jobs: dict[str, bytes | None] = {}
    for raw in (raw for listed in entries for raw in reversed(listed)):  # oldest first
        entry = decode_entry(raw)
        jobs.update(TaskMessage.from_body(msgpack.unpackb(entry["body"], raw=False)).payloads())
    return jobs


def queued(client: Client, *job_ids: str) -> list[tuple[str, bytes | None]]:
    """The given jobs, in this order, as the infer task would pass them (their messages taken)."""
    jobs = take_queued(client)
    return [(job_id, jobs[job_id]) for job_id in job_ids]
