"""aclq's kombu transport (producer/transport.py) and lease keeper (worker/lease.py) against a real
Redis and kombu's own bookkeeping: the contract a kombu upgrade must keep, or CI fails here."""

import contextlib
import logging
import socket
import time
import uuid

import msgpack
import pytest
import redis
from kombu import Connection, Consumer, Exchange, Queue

from producer import Settings, entries, keys, transport
from producer.client import _Core, _Prepared
from producer.connection import round_trip
from producer.dispatch import celery_config, make_celery, queue
from producer.transport import CLAIM_ROWS_OPTION, DEAD_LETTER_KEY_OPTION, Books, Transport, dead_letters
from producer.wire import PRIORITIES, ROWS_HEADER
from worker.embedded import RedisServer
from worker.lease import LeaseKeeper

#: kombu's defaults, and every name its options can change
OPTION_SETS = {
    "defaults": {},
    "renamed": {"unacked_key": "my_unacked", "unacked_index_key": "my_index", "global_keyprefix": "pfx:"},
    "no LMPOP": {},  # consumed as a Redis user denied LMPOP: the claim's path for Redis before 7.0
}
#: the rows of the consumers' largest batch (a worker's CLAIM_ROWS_OPTION, worker/app.py)
WORKER_ROWS = 64
#: the Redis user a worker consumes as, denied the command the claim prefers
NO_LMPOP_USER = "aclq-no-lmpop"


@pytest.fixture(params=list(OPTION_SETS))
def broker(request, redis_server):
    """A producer app and a consuming kombu connection with one set of transport options."""
    settings = Settings(redis_url=redis_server.url, namespace=f"tr{uuid.uuid4().hex[:8]}")
    app = make_celery(settings)
    options = app.conf.broker_transport_options
    options.update(OPTION_SETS[request.param], visibility_timeout=60, **{CLAIM_ROWS_OPTION: WORKER_ROWS})
    url = redis_server.url
    if request.param == "no LMPOP":
        with redis.Redis.from_url(url) as admin:
            admin.acl_setuser(
                NO_LMPOP_USER, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-lmpop"]
            )
        url = url.replace("redis://", f"redis://{NO_LMPOP_USER}@")
    connection = Connection(url, transport=Transport, transport_options=options)
    channel = connection.default_channel
    r = redis.Redis.from_url(redis_server.url)
    yield settings, app, channel, r, options
    connection.close()
    app.close()
    r.close()


def consume(settings, channel, count: int = 1, prefetch_count: int = 0) -> list:
    """Consume the shared queue (the worker's path: BRPOP on the doorbells, then the claim
    script) until ``count`` messages are delivered; all those delivered."""
    delivered: list = []
    shared = queue(keys.shared_queue(settings.namespace))
    consumer = Consumer(channel, [shared], accept=["json", "msgpack"], prefetch_count=prefetch_count)
    consumer.register_callback(lambda body, message: delivered.append(message))
    with consumer:
        while len(delivered) < count:
            channel.connection.client.drain_events(timeout=5)
    return delivered


def publish(app, settings, job_id="job-1", rows: int | None = None) -> None:
    shared = queue(keys.shared_queue(settings.namespace))
    headers = {ROWS_HEADER: rows} if rows is not None else None
    app.send_task("aclq.infer", args=[[job_id]], kwargs={"model": "m"}, queue=shared, headers=headers)


def prefixed(options: dict, key: str) -> str:
    """A key as kombu names it under these options (``global_keyprefix``)."""
    return options.get("global_keyprefix", "") + key


def kombu_key(options: dict, option: str) -> str:
    """One of kombu's own keys (``unacked_key``, ``unacked_index_key``) under these options."""
    return prefixed(options, options.get(option, getattr(Transport.Channel, option)))


def test_a_published_message_rings_its_queue_doorbell(broker):
    settings, app, _, r, options = broker
    publish(app, settings)
    shared = keys.shared_queue(settings.namespace)
    assert r.llen(prefixed(options, shared)) == 1
    assert r.llen(prefixed(options, keys.queue_bell(shared))) == 1


def test_a_doorbell_keeps_its_newest_tokens_only(broker, monkeypatch):
    settings, app, _, r, options = broker
    monkeypatch.setattr(entries, "BELL_KEEP", 3)
    for i in range(5):
        publish(app, settings, job_id=f"job-{i}")
    assert r.llen(prefixed(options, keys.queue_bell(keys.shared_queue(settings.namespace)))) == 3
    assert r.llen(prefixed(options, keys.shared_queue(settings.namespace))) == 5  # every message stays


def test_a_burst_past_the_doorbells_keep_leaves_its_tokens_for_workers_that_come_to_wait(broker, monkeypatch):
    """12 messages, 3 tokens kept: the consumer's wait takes one, and its claims take none while
    the messages are more than the tokens (a worker that comes to wait meanwhile is woken at
    once, not a doorbell timeout later); then the tokens go with the messages."""
    settings, app, channel, r, options = broker
    monkeypatch.setattr(entries, "BELL_KEEP", 3)
    for i in range(12):
        publish(app, settings, job_id=f"job-{i}")
    shared = keys.shared_queue(settings.namespace)
    bell = prefixed(options, keys.queue_bell(shared))
    seen = []
    while len(seen) < 12:
        delivered = consume(settings, channel, 1, prefetch_count=2)
        seen += job_ids(delivered)
        left = r.llen(prefixed(options, shared))
        assert left == 12 - len(seen)
        assert r.llen(bell) == min(2, left)
        for message in delivered:
            message.ack()
    assert seen == [f"job-{i}" for i in range(12)]


def test_a_server_that_lost_the_claim_script_gets_it_again(broker):
    """After a restart Redis has no scripts: the claim loads its own and takes the message."""
    settings, app, channel, r, _ = broker
    publish(app, settings, job_id="first")
    consume(settings, channel)  # the script is loaded
    r.script_flush()
    publish(app, settings, job_id="second")
    (message,) = consume(settings, channel)
    assert message.decode()[0] == [["second"]]  # its args: the job ids
    assert r.script_exists(channel._claim_script.sha) == [True]


def test_a_claimed_message_is_in_kombus_books_in_the_same_step(broker):
    settings, app, channel, r, options = broker
    publish(app, settings)
    (message,) = consume(settings, channel)
    tag = message.delivery_tag
    assert r.llen(prefixed(options, keys.shared_queue(settings.namespace))) == 0  # out of its queue,
    assert r.zscore(kombu_key(options, "unacked_index_key"), tag) is not None  # and in kombu's books
    assert r.hexists(kombu_key(options, "unacked_key"), tag)
    assert message.payload[0] == [["job-1"]]


def test_kombus_own_restore_returns_a_claimed_message_whose_lease_lapsed(broker):
    """The contract with kombu: what the claim script records is what restore_visible reads."""
    settings, app, channel, r, options = broker
    publish(app, settings)
    (message,) = consume(settings, channel)
    index = Books.of(options).index
    assert index == kombu_key(options, "unacked_index_key")
    r.zadd(index, {message.delivery_tag: 1.0})  # delivered long ago: the lease lapsed
    channel.qos.restore_visible(num=10, interval=1)
    assert r.zcard(index) == 0 and r.hlen(kombu_key(options, "unacked_key")) == 0
    (restored,) = consume(settings, channel)  # back in its queue, whole, marked redelivered
    assert restored.payload[0] == [["job-1"]] and restored.delivery_info["redelivered"]


@pytest.mark.parametrize("publisher", ["kombu's own transport", "aclq's client"])
def test_an_entry_of_either_format_is_delivered_and_restored_whole(broker, publisher):
    """kombu's own Redis transport writes JSON (body in base64); aclq's client writes its own
    format (the body's msgpack bytes as they are, inline payloads in them). Both are claimed,
    recorded, restored and delivered again whole."""
    settings, _, channel, r, options = broker
    envelope = bytes(range(256))  # any bytes: they are never base64-encoded nor decoded as text
    if publisher == "aclq's client":
        if options.get("global_keyprefix"):
            pytest.skip("the client has no global_keyprefix (not an aclq setting)")
        core = _Core(settings)
        job = core.envelope("m", {}, {})
        round_trip(r, core.message([_Prepared(job, envelope)]))
        want = ([[job.job_id]], {"model": "m", "inline": [envelope]})
    else:
        foreign = make_celery(settings)
        foreign.conf.broker_transport = "redis"
        foreign.conf.broker_transport_options = options
        foreign.send_task(
            "aclq.infer", args=[["job-1"]], kwargs={"model": "m"}, queue=queue(keys.shared_queue(settings.namespace))
        )
        foreign.close()
        assert r.lindex(prefixed(options, keys.shared_queue(settings.namespace)), 0)[:1] == b"{"  # JSON
        want = ([["job-1"]], {"model": "m"})
    (message,) = consume(settings, channel)
    assert tuple(message.payload[:2]) == want
    r.zadd(Books.of(options).index, {message.delivery_tag: 1.0})  # the lease lapsed
    channel.qos.restore_visible(num=10, interval=1)
    (restored,) = consume(settings, channel)
    assert tuple(restored.payload[:2]) == want and restored.delivery_info["redelivered"]


def test_a_message_acknowledged_with_its_answer_costs_kombus_ack_no_round_trip(broker):
    """The executor acknowledges a message in the round trip of its answer (Books.acks); Celery's
    ack when the task returns then only forgets it in the process."""
    settings, app, channel, r, options = broker
    publish(app, settings)
    (message,) = consume(settings, channel)
    books = Books.of(options)
    assert (books.unacked, books.index) == (kombu_key(options, "unacked_key"), kombu_key(options, "unacked_index_key"))
    with transport.settling([message.delivery_tag]):
        round_trip(r, books.acks([message.delivery_tag]))
    assert r.hlen(books.unacked) == 0 and r.zcard(books.index) == 0

    def zrems() -> int:
        return int(r.info("commandstats").get("cmdstat_zrem", {}).get("calls", 0))

    before = zrems()
    message.ack()
    assert zrems() == before  # kombu's ack sent nothing
    channel.qos._flush()  # kombu forgets acknowledged deliveries lazily
    assert message.delivery_tag not in channel.qos._delivered and message.delivery_tag not in transport._SETTLED


def test_a_lease_acknowledged_with_its_answer_is_not_reported_missing(broker, caplog):
    """From the answer's round trip (which acknowledges the message) to the task's end (which
    releases its lease), a renewal finds it gone rightly: no warning."""
    settings, app, channel, r, options = broker
    publish(app, settings)
    (message,) = consume(settings, channel)
    books = Books.of(options)
    keeper = LeaseKeeper(redis.Redis.from_url(settings.redis_url), books.index, interval_s=3600)
    assert transport.held() == [message.delivery_tag]  # held from its claim
    with transport.settling([message.delivery_tag]):
        round_trip(r, books.acks([message.delivery_tag]))
        # a renewal racing the answer: the acknowledgement is written, the round trip not over
        with caplog.at_level(logging.WARNING, logger="worker.lease"):
            assert keeper.renew() == 0
    assert "held messages are not in kombu's" not in caplog.text
    with pytest.raises(redis.ConnectionError), transport.settling(["lost"]):
        raise redis.ConnectionError("the answer's round trip failed")
    assert not transport.acknowledged("lost")  # Celery's ack of it will still write
    message.ack()
    assert transport.held() == []
    keeper.close()


def test_a_renewed_lease_is_not_restored_and_a_lapsed_one_is_reported(broker, caplog):
    settings, app, channel, r, options = broker
    publish(app, settings)
    (message,) = consume(settings, channel)
    index = Books.of(options).index
    r.zadd(index, {message.delivery_tag: 1.0})
    keeper = LeaseKeeper(redis.Redis.from_url(settings.redis_url), index, interval_s=3600)
    assert keeper.renew() == 1  # ZADD XX CH: renewed
    channel.qos.restore_visible(num=10, interval=1)
    assert r.zscore(index, message.delivery_tag) is not None  # still held: not handed out again
    r.zrem(index, message.delivery_tag)  # kombu's books lost it (an ack elsewhere, a restore)
    with caplog.at_level(logging.WARNING, logger="worker.lease"):
        assert keeper.renew() == 0
    assert f"1 of 1 held messages are not in kombu's '{index}'" in caplog.text
    keeper.close()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00binary", "control characters"),
        (b'{"body": "\xff"}', "not UTF-8"),
        (b"[1, 2, 3]", "not a kombu message object"),
        (b'"a string"', "not a kombu message object"),
        (b"null", "not a kombu message object"),
        (b"{}", "not a kombu message object"),
        (b'{"properties": {}}', "no delivery_tag"),
        (b'{"properties": {"delivery_tag": "t"}}', "no delivery_info"),
        (b'{"properties": {"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}}}', "no body"),
        (b"", "not JSON"),
        # aclq's format: a msgpack map (the message less its body), then the body
        (b"\x81", "not msgpack"),  # a map cut short
        (msgpack.packb({"headers": {}}), "not a kombu message object"),
        (msgpack.packb({"properties": {"delivery_tag": "t"}}), "no delivery_info"),
        (
            msgpack.packb({"properties": {"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}}}),
            "no headers",
        ),
    ],
)
def test_an_entry_that_is_no_message_is_dead_lettered_and_the_next_delivered(broker, entry, reason, caplog):
    settings, app, channel, r, options = broker
    shared = keys.shared_queue(settings.namespace)
    publish(app, settings)
    r.rpush(prefixed(options, shared), entry)  # RPUSH: in front of the good message (BRPOP order)
    with caplog.at_level(logging.ERROR, logger="producer.transport"):
        (message,) = consume(settings, channel)
    assert message.payload[0] == [["job-1"]]
    (dead,) = dead_letters(r, options[DEAD_LETTER_KEY_OPTION])
    assert dead["entry"] == entry and reason in dead["reason"] and dead["queue"] == prefixed(options, shared)
    assert caplog.text.count("is not a message") == 1  # logged once
    assert r.hlen(kombu_key(options, "unacked_key")) == 1  # only the good one is held


def test_the_dead_letter_key_is_in_the_namespace():
    settings = Settings(redis_url="redis://127.0.0.1:1/0", namespace="ns1")
    assert celery_config(settings)["broker_transport_options"][DEAD_LETTER_KEY_OPTION] == "ns1:deadletter"


def test_a_backlog_without_doorbell_tokens_is_drained_without_waiting_per_message(broker):
    """Messages a foreign producer left (no tokens): the first waits out one doorbell timeout at
    most; each claim that finds a message claims again at once."""
    settings, app, channel, r, options = broker
    for i in range(20):
        publish(app, settings, job_id=f"job-{i}")
    r.delete(prefixed(options, keys.queue_bell(keys.shared_queue(settings.namespace))))
    delivered: list = []
    consumer = Consumer(channel, [queue(keys.shared_queue(settings.namespace))], accept=["json"])
    consumer.register_callback(lambda body, message: delivered.append(message))
    started = time.monotonic()
    with consumer:
        while len(delivered) < 20:
            channel.connection.client.drain_events(timeout=5)
    assert time.monotonic() - started < 20 * channel.brpop_timeout / 2  # not a timeout per message
    assert [m.payload[0][0][0] for m in delivered] == [f"job-{i}" for i in range(20)]


def test_each_claim_takes_the_token_of_its_own_queue(broker):
    """A worker of two queues draining one: every token is taken with its message, so none is
    left to wake a worker later for a claim that finds nothing."""
    settings, app, channel, r, options = broker
    for i in range(20):
        publish(app, settings, job_id=f"job-{i}")
    delivered: list = []
    queues = [queue(keys.device_queue(settings.namespace, 0)), queue(keys.shared_queue(settings.namespace))]
    consumer = Consumer(channel, queues, accept=["json"])
    consumer.register_callback(lambda body, message: delivered.append(message))
    with consumer:
        while len(delivered) < 20:
            channel.connection.client.drain_events(timeout=5)
    assert r.llen(prefixed(options, keys.queue_bell(keys.shared_queue(settings.namespace)))) == 0


def lmpop_stats(r: redis.Redis) -> tuple[int, int]:
    """LMPOP calls that succeeded, and those refused (an ACL) or failed, so far."""
    stats = r.info("commandstats").get("cmdstat_lmpop", {})
    failed = int(stats.get("failed_calls", 0))
    return int(stats.get("calls", 0)) - failed, int(stats.get("rejected_calls", 0)) + failed


def test_claims_follow_kombus_priority_order(broker, request):
    """Priority 0 first, then by age within a level, on both of the claim's paths: one LMPOP,
    or (LMPOP refused, as before Redis 7.0) an RPOP per queue key."""
    settings, app, channel, r, options = broker
    shared = queue(keys.shared_queue(settings.namespace))
    for job_id, priority in (("late", 9), ("first", 0), ("second", 0), ("middle", 5)):
        app.send_task("aclq.infer", args=[[job_id]], kwargs={"model": "m"}, queue=shared, priority=priority)
    before = lmpop_stats(r)
    order = [message.payload[0][0][0] for message in consume(settings, channel, 4)]
    assert order == ["first", "second", "middle", "late"]
    calls, refused = (after - was for after, was in zip(lmpop_stats(r), before))
    # one claim: an LMPOP a priority level that holds messages (3) and one that finds the
    # queues empty; or one LMPOP refused, then an RPOP a key
    assert (calls, refused) == ((0, 1) if "no LMPOP" in request.node.name else (4, 0))


def script_calls(r: redis.Redis) -> int:
    """EVALSHA calls that ran a script so far (a first call answered NOSCRIPT does not)."""
    stats = r.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


def job_ids(messages: list) -> list[str]:
    return [message.payload[0][0][0] for message in messages]


def test_a_backlog_is_claimed_as_far_as_the_prefetch_limit_allows_in_one_step(broker):
    """A consumer with room for 4 takes 4 waiting messages with one claim: in order, each in
    kombu's books, each with a doorbell token, so the tokens left match the messages left."""
    settings, app, channel, r, options = broker
    for i in range(10):
        publish(app, settings, job_id=f"job-{i}")
    shared = keys.shared_queue(settings.namespace)
    before = script_calls(r)
    delivered = consume(settings, channel, 4, prefetch_count=4)
    assert job_ids(delivered) == [f"job-{i}" for i in range(4)]
    assert script_calls(r) - before == 1
    assert r.hlen(kombu_key(options, "unacked_key")) == 4 and r.zcard(kombu_key(options, "unacked_index_key")) == 4
    assert r.llen(prefixed(options, shared)) == 6 and r.llen(prefixed(options, keys.queue_bell(shared))) == 6
    for message in delivered:
        message.ack()


def test_only_the_last_message_of_a_claim_that_left_its_queues_empty_is_delivered_as_the_last(broker):
    """What a gathering worker runs its held messages on when its model has no delay
    (worker/gather.py): the last message of a claim, and only when no message was left."""
    settings, app, channel, r, options = broker
    for i in range(6):
        publish(app, settings, job_id=f"job-{i}")
    seen: list[bool] = []

    def on_message(body, message) -> None:
        seen.append(message.channel.delivering_last)
        message.ack()

    consumer = Consumer(channel, [queue(keys.shared_queue(settings.namespace))], accept=["json"], prefetch_count=4)
    consumer.register_callback(on_message)
    with consumer:
        while len(seen) < 6:
            channel.connection.client.drain_events(timeout=5)
    assert seen == [False] * 5 + [True]  # claims of 4 (2 left) and of 2 (none left)
    assert not channel.delivering_last  # only while a message is delivered


@pytest.mark.parametrize(
    ("rows", "claims"),
    [
        ([1365, 1365, 1365], [1, 1, 1]),  # each alone: a busy worker holds none another could run
        ([20, 20, 20, 20, 20], [4, 1]),  # until 64 rows are reached
        ([None] * 6, [4, 2]),  # no header: a row a message, so the prefetch limit decides
        ([30, 1365, 30], [2, 1]),  # the first is always taken, the rows fill up after it
    ],
)
def test_a_claim_takes_no_more_messages_than_one_batch_of_rows(broker, rows, claims):
    """A worker whose largest batch is 64 rows (CLAIM_ROWS_OPTION) claims messages until their
    rows (the header the client writes) reach 64; those popped past it go back to the front
    of their queue in order, with their doorbell tokens."""
    settings, app, channel, r, options = broker
    shared = keys.shared_queue(settings.namespace)
    for i, n in enumerate(rows):
        publish(app, settings, job_id=f"job-{i}", rows=n)
    taken, seen = [], 0
    while seen < len(rows):
        before = script_calls(r)
        delivered = consume(settings, channel, 1, prefetch_count=4)
        assert script_calls(r) - before == 1  # one claim
        taken.append(len(delivered))
        assert job_ids(delivered) == [f"job-{i}" for i in range(seen, seen + len(delivered))]
        seen += len(delivered)
        left = len(rows) - seen
        assert r.llen(prefixed(options, shared)) == left and r.llen(prefixed(options, keys.queue_bell(shared))) == left
        for message in delivered:
            message.ack()
    assert taken == claims


def test_messages_claimed_together_are_held_from_the_claim_until_acknowledged(broker):
    """While the first of a claim's messages is handled (a worker runs a job inside its
    delivery), the others are held too: their leases are renewed before they are delivered."""
    settings, app, channel, r, options = broker
    for i in range(3):
        publish(app, settings, job_id=f"job-{i}")
    index = Books.of(options).index
    keeper = LeaseKeeper(redis.Redis.from_url(settings.redis_url), index, interval_s=3600)
    during_first: list = []

    def on_message(body, message) -> None:
        if not during_first:
            during_first.extend([transport.held(), keeper.renew()])
        delivered.append(message)

    delivered: list = []
    consumer = Consumer(channel, [queue(keys.shared_queue(settings.namespace))], accept=["json"])
    consumer.register_callback(on_message)
    with consumer:
        channel.connection.client.drain_events(timeout=5)
    tags = {message.delivery_tag for message in delivered}
    assert len(tags) == 3 and set(during_first[0]) == tags and during_first[1] == 3
    for message in delivered:
        message.ack()
    assert not tags & set(transport.held()) and keeper.renew() == 0
    keeper.close()


def test_a_failed_delivery_puts_the_messages_claimed_with_it_back_in_order(broker):
    """The messages a claim took after one whose delivery raised go back to the front of their
    queue, in order, and are no longer held; the one that raised stays kombu's to restore."""
    settings, app, channel, r, options = broker
    for i in range(3):
        publish(app, settings, job_id=f"job-{i}")

    def refuse(body, message) -> None:
        raise RuntimeError("the consumer failed")

    consumer = Consumer(channel, [queue(keys.shared_queue(settings.namespace))], accept=["json"])
    consumer.register_callback(refuse)
    with consumer, pytest.raises(RuntimeError):
        channel.connection.client.drain_events(timeout=5)
    assert r.hlen(kombu_key(options, "unacked_key")) == 1 and len(transport.held()) == 1
    again = consume(settings, channel, 2)
    assert job_ids(again) == ["job-1", "job-2"] and all(m.delivery_info["redelivered"] for m in again)


def test_a_consumer_that_loses_redis_while_waiting_closes_its_connection_cleanly():
    """What Celery's consumer does when Redis goes away while it waits on a doorbell, holding a
    delivered message: collect the connection (whose close of the channel stops part way: the
    outstanding wait's reply cannot be read), then close it, ignoring connection errors. The
    second close must raise nothing else: kombu's asked the transport, detached by then, for
    its URL (AttributeError, which stopped a worker after a Sentinel failover)."""
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, namespace="lost")
        app = make_celery(settings)
        publish(app, settings)
        connection = Connection(server.url, transport=Transport, transport_options=app.conf.broker_transport_options)
        delivered: list = []
        # and a broadcast queue, as Celery's remote control has: kombu deletes it at close
        control = Queue("lost.control", Exchange("lost.control", type="fanout"), auto_delete=True)
        shared = queue(keys.shared_queue(settings.namespace))
        consumer = Consumer(connection.default_channel, [shared, control], accept=["json"])
        consumer.register_callback(lambda body, message: delivered.append(message))
        consumer.consume()
        while not delivered:
            connection.drain_events(timeout=5)
        for _ in range(10):  # until nothing more comes: the next wait is sent, and outstanding
            try:
                connection.drain_events(timeout=0.05)
            except socket.timeout:
                break
        else:
            pytest.fail("the consumer never waited")
        server.kill()
        connection.collect()
        with contextlib.suppress(*connection.connection_errors):
            connection.close()
        app.close()
    assert len(delivered) == 1


def test_the_client_writes_messages_into_the_keys_kombus_channel_reads(broker):
    """producer/keys.py names a queue's priority levels without kombu, which the client never
    imports: the names must stay kombu's."""
    channel = broker[2]
    assert [keys.queue_key("q", p) for p in PRIORITIES] == [channel._q_for_pri("q", p) for p in PRIORITIES]
