"""The Celery configuration of aclq's workers, and what the client shares with them: broker,
serializers, queues and transport options (aclq's own Redis clients: producer/connection.py).

The client does not publish through Celery: it writes the task message itself
(``producer.client._Core.message``) in the same round trip as the job's records. A job's
tensors travel inside the message as msgpack bytes when small, else under ``keys.job_input``;
no tensor byte is ever base64-encoded into a message (docs/wire-format.md).
"""

import ssl
from typing import Any, Final
from urllib.parse import urlsplit

from celery import Celery
from kombu.entity import Exchange, Queue

from producer import keys
from producer.connection import SENTINEL_OPTIONS, check_sentinels
from producer.settings import Settings
from producer.transport import DEAD_LETTER_KEY_OPTION
from producer.wire import PRIORITIES

#: the kombu transport both sides use, and its Sentinel variant (a ``sentinel://`` ACLQ_REDIS_URL)
TRANSPORT: Final = "producer.transport:Transport"
SENTINEL_TRANSPORT: Final = "producer.transport:SentinelTransport"
#: seconds between sweeps that return a dead worker's jobs to their queues (kombu's own sweep)
RESTORE_INTERVAL_S: Final = 5


def celery_config(settings: Settings) -> dict[str, Any]:
    url = settings.require_url()
    config: dict[str, Any] = {
        "broker_url": url,
        # kombu's Redis transport with a delivery that cannot lose a message (producer/transport.py)
        "broker_transport": TRANSPORT,
        "broker_connection_retry_on_startup": True,
        # aclq's clients write msgpack task messages; JSON is what plain Celery senders use.
        # Pickle is never accepted.
        "task_serializer": "json",
        "accept_content": ["json", "msgpack"],
        "result_serializer": "json",
        "task_ignore_result": True,  # results travel through aclq's reply keys, not a backend
        "task_default_queue": keys.shared_queue(settings.namespace),
        "broker_transport_options": {
            # A job whose worker stopped renewing it returns to its queue after this; running
            # jobs are renewed (worker/lease.py), so a long job never runs twice at once.
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": RESTORE_INTERVAL_S,
            "unacked_restore_throttle": 1,
            "priority_steps": list(PRIORITIES),
            "queue_order_strategy": "priority",
            DEAD_LETTER_KEY_OPTION: keys.dead_letter(settings.namespace),
        },
    }
    if urlsplit(url).scheme == "rediss" and "ssl_cert_reqs" not in url:
        config["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    target = settings.sentinel()
    if target is not None:
        config["broker_url"] = target.broker_url()
        config["broker_transport"] = SENTINEL_TRANSPORT
        config["broker_transport_options"].update(
            master_name=target.master_name, sentinel_kwargs=dict(SENTINEL_OPTIONS)
        )
    return config


def queue(name: str) -> Queue:
    """A queue as both sides declare it: a direct exchange of its own name, routed by its name."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def make_celery(settings: Settings, main: str = "aclq") -> Celery:
    """A Celery app of ``settings``; ConfigError at once for sentinels that cannot name the
    primary (kombu would retry them for ever)."""
    target = settings.sentinel()
    if target is not None:
        check_sentinels(target)
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
