"""What a producer writes into a queue: a Celery message as aclq stores it, and the doorbell
token beside it. The consuming side (the kombu transport, producer/transport.py) reads them;
this module imports no kombu, so an application that only enqueues never loads it.

Entries are kombu messages in aclq's format (:func:`encode_entry`: the message less its body as
a msgpack map, then the body's raw bytes) rather than kombu's JSON with a base64 body; the
transport reads both.
"""

import uuid
from typing import Any, Final

import msgpack

from producer import keys

#: what a doorbell token holds (any value would do: a token says only "look")
BELL: Final = b"1"
#: tokens kept in a doorbell list: enough to wake every idle worker of a queue; past a burst
#: that size the tokens are fewer than the messages (they wake the workers that come to wait;
#: a busy worker whose claim was full claims again at once without one), and a doorbell nobody
#: reads (workers of an older aclq) stays this small
BELL_KEEP: Final = 1024


def encode_entry(message: dict[str, Any]) -> bytes:
    """A kombu message as aclq stores it in a queue: the message less its body as a msgpack map,
    then the body's bytes as they are (kombu's own Redis transport stores JSON with the body in
    base64; Redis' Lua msgpack, which the claim script checks entries with, has no bytes type)."""
    body = message.get("body") or b""
    head: bytes = msgpack.packb({k: v for k, v in message.items() if k != "body"}, use_bin_type=True)
    return head + (body.encode() if isinstance(body, str) else body)


def message_entry(queue: str, priority: int, headers: dict[str, Any], body: bytes) -> bytes:
    """A Celery message (msgpack body) for ``queue``, as kombu's publish through aclq's transport
    would store it: routed by the default exchange to the queue's name; a fresh delivery tag."""
    properties = {
        "correlation_id": headers["id"],
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": priority,
        "delivery_tag": str(uuid.uuid4()),
    }
    return encode_entry(
        {
            "body": body,
            "content-encoding": "binary",
            "content-type": "application/x-msgpack",
            "headers": headers,
            "properties": properties,
        }
    )


def ring(queue: str) -> list[tuple[Any, ...]]:
    """The commands that push one doorbell token for ``queue``, the list kept to BELL_KEEP."""
    bell = keys.queue_bell(queue)
    return [("LPUSH", bell, BELL), ("LTRIM", bell, 0, BELL_KEEP - 1)]
