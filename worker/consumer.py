"""The worker's Celery consumer: a delivered message that Celery cannot run goes to the dead-letter
list too, with the reason, instead of only a log line.

The transport dead-letters queue entries that are no kombu message (producer/transport.py);
this covers what lies one level up: a well-formed envelope whose body does not decode, whose
task is unknown, or whose content type is refused (pickle).
"""

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.message import Message

from producer.entries import encode_entry


def dead_letter(message: Message, reason: str) -> None:
    """Record ``message`` (as aclq's transport stores entries) as a dead letter, through aclq's
    channel that delivered it (producer/transport.py)."""
    routing_key = str(message.delivery_info.get("routing_key", ""))
    raw = message._raw  # type: ignore[attr-defined]  # kombu's dict of the message as it lay in Redis
    message.channel.dead_letter(routing_key, reason, encode_entry(raw))


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer; each of its refusals also dead-letters the message (then Celery logs
    it and acknowledges or rejects it, as it would)."""

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        dead_letter(message, f"body cannot be decoded: {type(exc).__name__}: {exc}")
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Message) -> None:
        dead_letter(message, "not a Celery task message")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        dead_letter(message, f"unknown task {exc}")
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        dead_letter(message, f"invalid task: {type(exc).__name__}: {exc}")
        super().on_invalid_task(body, message, exc)
