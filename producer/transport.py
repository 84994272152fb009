"""aclq's kombu Redis transport: a message is never held only by a process that can die.

kombu's Redis channel consumes with ``BRPOP``, which removes a message from its queue, and only
then records it as delivered-unacknowledged (``unacked`` and ``unacked_index``, which the
visibility timeout restores from). Between the two steps the message lives only in the worker:
in its socket buffer, or in a reply it has not read yet because it is busy. A worker killed
there loses the message for good. A worker that gathers messages for a batch runs the batch
from a timer while its next ``BRPOP`` is outstanding, so the popped message waits there for the
whole execution (the loss docs/reliability.md records).

Here popping and recording are one step: a script pops the first messages of the worker's
queues (kombu's priority order) and records them in ``unacked`` and ``unacked_index`` in the same
atomic call, so from the moment they leave their queue, kombu's visibility timeout can restore
them. One claim takes as many messages as the consumer's prefetch limit has room for (a worker's:
its largest batch), and no more than bring that many rows (the messages' ``aclq_rows`` header),
so a worker facing a backlog takes a batch's worth in one round trip instead of a round trip a
message, and a worker given jobs of many rows takes one at a time; they are delivered to Celery
one after another, and held (their leases renewed, :func:`held`) from the claim, since the
first may run its job before the others are delivered.
Scripts cannot block, so the worker waits on a *doorbell*: the producer pushes a token onto
``keys.queue_bell(queue)`` in the same round trip as each message, and the worker's ``BRPOP``
takes a token, not a message. Tokens are only hints: one lost with a killed worker costs
nothing, since every wait also ends after ``brpop_timeout`` (1 s) with a claim, a claim that
takes all it may while messages are left claims again at once (a backlog drains at full speed,
tokens or not, taking none), and a token without a message makes a claim that finds nothing.
So a claim leaves its queue no more tokens than messages, and takes none while the messages are
more: a burst past ``BELL_KEEP`` messages has fewer tokens than messages, and each is a worker
that comes to wait woken at once until the messages run out. A message published by something
other than aclq (no token) is still consumed, within a second. Per message this costs
at most what kombu's own consumption did: two round trips for the worker (the wait, the claim)
and one for the producer (message and token in one pipeline); a backlog, two per claim.

The same script moves a queue entry that is not a message kombu can deliver and restore (not
JSON, not an object, no delivery tag or routing) to aclq's dead-letter list with the reason,
instead of handing it to kombu, whose decoding would raise and end the worker.

Entries are stored in aclq's format (producer/entries.py, which a producer writes them with:
a msgpack map, then the body's raw bytes) rather than kombu's JSON with a base64 body; both are
read. A worker acknowledges a message in the round trip of its answer (:class:`Books`), and
kombu's ack then writes nothing.
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from queue import Empty  # what kombu's channels raise for "no message"
from typing import Any, Final

import msgpack
import redis
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as virtual
from kombu.utils.json import loads

from producer import keys
from producer.connection import PrimaryConnection, round_trip
from producer.entries import encode_entry, ring
from producer.settings import DEFAULT_NAMESPACE
from producer.wire import ROWS_HEADER

log = logging.getLogger(__name__)

#: entries kept in the dead-letter list (the newest); the count keeps growing in the metrics
DEAD_LETTER_KEEP: Final = 10_000
#: transport options aclq adds to kombu's (``broker_transport_options``)
DEAD_LETTER_KEY_OPTION: Final = "aclq_dead_letter_key"
DEAD_LETTER_HOOK_OPTION: Final = "aclq_on_dead_letter"
#: the most rows one claim takes (a worker's: its largest batch); none: any
CLAIM_ROWS_OPTION: Final = "aclq_claim_rows"

# KEYS: unacked hash, unacked index, dead-letter list, the doorbell of each queue, then the
# queue keys in priority order (each level's keys in the queues' order). ARGV: now (the client's
# clock, as kombu scores deliveries), dead letters kept, most messages to claim, how many
# queues, most rows to claim (0: any; the first message is taken whatever its rows), the header
# that says a message's rows (producer.wire.ROWS_HEADER; a row a message without it). Each
# queue it touched keeps no more doorbell tokens than messages left; messages popped past the
# rows go back in order.
# Returns {claimed, dead, left}: {index of the queue key, message, delivery tag} per message
# claimed, in order; {queue key, reason} per entry dead-lettered on the way; then how many of
# the queue keys still hold entries (0 unless it claimed all it could). What it records is
# what kombu's restore reads back: a JSON object with a delivery tag and the exchange and
# routing key to route it by, in UTF-8 with no raw control characters.
_CLAIM: Final = r"""
local function utf8_ok(s)
  if not string.find(s, '[\128-\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    local len, lo, hi = 1, 0x80, 0xBF
    if c >= 0x80 then
      if c >= 0xC2 and c <= 0xDF then len = 2
      elseif c >= 0xE0 and c <= 0xEF then len = 3
        if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
      elseif c >= 0xF0 and c <= 0xF4 then len = 4
        if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      else return false end
      for j = i + 1, i + len - 1 do
        local d = string.byte(s, j)
        if not d or d < lo or d > hi then return false end
        lo, hi = 0x80, 0xBF
      end
    end
    i = i + len
  end
  return true
end

-- A queue entry as a table, and its format; or nil and why it is none. aclq writes a msgpack
-- map (the message less its body) followed by the body's raw bytes; kombu's own Redis transport
-- writes a JSON object with the body in base64. An entry that starts as no msgpack map does is
-- read as JSON.
local function decode(raw)
  local first = string.byte(raw, 1)
  if first and ((first >= 0x80 and first <= 0x8f) or first == 0xde or first == 0xdf) then
    local ok, body_at, msg = pcall(cmsgpack.unpack_one, raw)
    if not ok then return nil, 'not msgpack: ' .. tostring(body_at) end
    return msg, 'msgpack'
  end
  if string.find(raw, '[%z\1-\8\11\12\14-\31\127]') then return nil, 'control characters: not JSON' end
  if not utf8_ok(raw) then return nil, 'not UTF-8' end
  local ok, msg = pcall(cjson.decode, raw)
  if not ok then return nil, 'not JSON: ' .. tostring(msg) end
  return msg, 'json'
end

local function problem(raw)
  local msg, format = decode(raw)
  if msg == nil then return format end
  if type(msg) ~= 'table' or msg[1] ~= nil or type(msg['properties']) ~= 'table' then
    return 'not a kombu message object'
  end
  local props = msg['properties']
  local info = props['delivery_info']
  if type(props['delivery_tag']) ~= 'string' or props['delivery_tag'] == '' then return 'no delivery_tag' end
  if type(info) ~= 'table' or type(info['exchange']) ~= 'string' or type(info['routing_key']) ~= 'string' then
    return 'no delivery_info exchange and routing_key'
  end
  if format == 'json' and type(msg['body']) ~= 'string' then return 'no body' end  -- aclq's follows the map
  if type(msg['headers']) ~= 'table' then return 'no headers' end
  return nil, props['delivery_tag'], info, format, msg['headers']
end

-- The rows a message's header (ARGV[6]) says its jobs bring, else 1.
local function rows_of(headers)
  local n = tonumber(headers[ARGV[6]])
  if n and n >= 1 and n == math.floor(n) then return n end
  return 1
end

-- Up to n entries of the first non-empty queue key, as {key index, entry}: one LMPOP (Redis
-- 7.0+) instead of an RPOP per key (3 queues x 10 priority levels: 30 on an idle worker's
-- claim); before 7.0, or where an ACL denies LMPOP, an RPOP per key in the same order.
local queues = tonumber(ARGV[4])
local first_key = 4 + queues
local position, lmpop_args = {}, {#KEYS - first_key + 1}
for i = first_key, #KEYS do
  position[KEYS[i]] = i
  lmpop_args[#lmpop_args + 1] = KEYS[i]
end
lmpop_args[#lmpop_args + 1] = 'RIGHT'
lmpop_args[#lmpop_args + 1] = 'COUNT'
local lmpop = true
local function pop(n)
  if lmpop then
    lmpop_args[#lmpop_args + 1] = n
    local got = redis.pcall('LMPOP', unpack(lmpop_args))
    lmpop_args[#lmpop_args] = nil
    if type(got) ~= 'table' then return {} end
    if got.err == nil then
      local out = {}
      for _, raw in ipairs(got[2]) do out[#out + 1] = {position[got[1]], raw} end
      return out
    end
    lmpop = false
  end
  for i = first_key, #KEYS do
    local raw = redis.call('RPOP', KEYS[i])
    if raw then return {{i, raw}} end
  end
  return {}
end

local claimed, dead, want, touched = {}, {}, tonumber(ARGV[3]), {}
local rows_max, rows, full = tonumber(ARGV[5]), 0, false
while not full and #claimed < want do
  local popped = pop(want - #claimed)
  if #popped == 0 then break end
  for n, entry in ipairs(popped) do
    if full then
      -- past the rows of a batch: back where they were, the last popped first, so in order
      for j = #popped, n, -1 do redis.call('RPUSH', KEYS[popped[j][1]], popped[j][2]) end
      break
    end
    local i, raw = entry[1], entry[2]
    local reason, tag, info, format, headers = problem(raw)
    if not reason then
      -- kombu's record [message, exchange, routing key], in the message's own format
      local record
      if format == 'json' then
        record = '[' .. raw .. ',' .. cjson.encode(info['exchange']) .. ',' .. cjson.encode(info['routing_key']) .. ']'
      else
        record = cmsgpack.pack(info['exchange']) .. cmsgpack.pack(info['routing_key']) .. raw
      end
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      redis.call('HSET', KEYS[1], tag, record)
      claimed[#claimed + 1] = {i - first_key + 1, raw, tag}
      touched[(i - first_key) % queues] = true
      rows = rows + rows_of(headers)
      full = rows_max > 0 and rows >= rows_max
    else
      redis.call('LPUSH', KEYS[3], cmsgpack.pack({queue = KEYS[i], reason = reason, entry = raw, at = ARGV[1]}))
      redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[2]) - 1)
      dead[#dead + 1] = {KEYS[i], reason}
      touched[(i - first_key) % queues] = true
    end
  end
end
-- A queue touched keeps no more tokens than messages (a token without one wakes a worker for
-- a claim that finds nothing), and no fewer than it had while messages are more: past a burst
-- of BELL_KEEP messages the tokens are fewer than the messages, and must last as long as they
-- do for every worker that comes to wait meanwhile.
for j in pairs(touched) do
  local bell = KEYS[4 + j]
  local tokens, left, k = redis.call('LLEN', bell), 0, first_key + j
  while k <= #KEYS and left < tokens do
    left = left + redis.call('LLEN', KEYS[k])
    k = k + queues
  end
  if left == 0 and tokens > 0 then
    redis.call('DEL', bell)
  elseif left < tokens then
    redis.call('LTRIM', bell, 0, left - 1)  -- tokens are alike: keep as many as messages
  end
end
-- whether messages are left (a list exists while it holds entries): the consumer claims again
-- at once, without a token, only then
local left = (full or #claimed == want) and redis.call('EXISTS', unpack(KEYS, first_key)) or 0
return {claimed, dead, left}
"""


#: the most messages one claim takes when the consumer sets no prefetch limit
CLAIM_MAX: Final = 128

#: delivery tags whose records aclq removed itself, in the round trip that answered their jobs
#: (:meth:`Books.acks`): kombu's own ack of them then writes nothing. Tags are unique (UUIDs).
_SETTLED: set[str] = set()
#: delivery tags this process claimed and has not acknowledged, rejected or put back: the
#: messages whose leases it renews (worker/lease.py), from the claim on, delivered to Celery
#: yet or still waiting behind the others a claim took
_HELD: set[str] = set()


@dataclass(frozen=True)
class Books:
    """kombu's records of the messages delivered and not yet acknowledged, as kombu names them
    for a set of transport options: ``unacked`` (tag -> message) and ``index`` (tag -> delivery
    time, what the visibility timeout reads)."""

    unacked: str
    index: str

    @classmethod
    def of(cls, transport_options: dict[str, Any]) -> "Books":
        prefix = transport_options.get("global_keyprefix", "")
        names = (
            transport_options.get(name, getattr(kombu_redis.Channel, name))
            for name in ("unacked_key", "unacked_index_key")
        )
        return cls(*(prefix + name for name in names))

    def acks(self, tags: Sequence[str]) -> list[tuple[str, ...]]:
        """The commands that acknowledge these deliveries (what kombu's ack writes), for the
        caller to send with the answers of their jobs (producer.connection.round_trip), within
        :func:`settling` them."""
        return [("ZREM", self.index, *tags), ("HDEL", self.unacked, *tags)] if tags else []


def held() -> list[str]:
    """The delivery tags of the messages this process holds: claimed, and neither acknowledged,
    rejected nor put back yet."""
    return list(_HELD.copy())  # copied at once: the consuming thread adds and removes meanwhile


def acknowledged(tag: str) -> bool:
    """Whether aclq acknowledged this delivery with its answer and Celery has not acked it yet."""
    return tag in _SETTLED


@contextlib.contextmanager
def settling(tags: Sequence[str]) -> Iterator[None]:
    """Around the round trip that acknowledges these deliveries with :meth:`Books.acks`: once it
    is sent, Celery's ack of them, when their task returns, has nothing left to write. They are
    marked before it is sent, so that a lease renewal racing it does not report them missing,
    and unmarked if it fails."""
    _SETTLED.update(tags)
    try:
        yield
    except BaseException:
        _SETTLED.difference_update(tags)
        raise


def decode_entry(raw: bytes) -> dict[str, Any]:
    """A queue entry in either format: aclq's (:func:`encode_entry`: it starts with a msgpack
    map) or JSON (kombu's)."""
    if not raw or not (0x80 <= raw[0] <= 0x8F or raw[0] in (0xDE, 0xDF)):
        return loads(raw)  # type: ignore[no-any-return]
    (message,), body = _unpack_leading(raw, 1)
    return {**message, "body": body}


def decode_record(raw: bytes) -> tuple[dict[str, Any], str, str]:
    """An unacked record, ``[message, exchange, routing key]``: kombu's JSON, or the claim
    script's for an aclq entry (exchange and routing key as msgpack, then the entry)."""
    if raw[:1] == b"[":
        message, exchange, routing_key = loads(raw)
        return message, exchange, routing_key
    (exchange, routing_key), entry = _unpack_leading(raw, 2)
    return decode_entry(entry), exchange, routing_key


def _unpack_leading(raw: bytes, count: int) -> tuple[list[Any], bytes]:
    """The first ``count`` msgpack objects of ``raw``, and the bytes after them."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(raw), 1))
    unpacker.feed(raw)
    objects = [unpacker.unpack() for _ in range(count)]
    return objects, raw[unpacker.tell() :]


class QoS(kombu_redis.QoS):
    """kombu's QoS, less the write at delivery (the claim script recorded the message already),
    reading records in either entry format."""

    def append(self, message: Any, delivery_tag: str) -> None:
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        """kombu's ack, without its round trip where the answer's acknowledged it already."""
        _HELD.discard(delivery_tag)
        if delivery_tag in _SETTLED:
            _SETTLED.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
        else:
            super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        _HELD.discard(delivery_tag)
        _SETTLED.discard(delivery_tag)  # its records are gone: kombu's reject finds nothing to restore
        super().reject(delivery_tag, requeue)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        """kombu's, reading the record ``[message, exchange, routing key]`` as JSON (kombu's)
        or msgpack (aclq's claim script writes a msgpack message's record in msgpack)."""
        _HELD.discard(tag)

        def restore_transaction(pipe: Any) -> None:
            record = pipe.hget(self.unacked_key, tag)
            pipe.multi()
            self._remove_from_indices(tag, pipe)
            if record:
                message, exchange, routing_key = decode_record(record)
                self.channel._do_restore_message(message, exchange, routing_key, pipe, leftmost)

        with self.channel.conn_or_acquire(client) as client:
            client.transaction(restore_transaction, self.unacked_key)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.connection.client.transport_options
        self._dead_letter_key: str = options.get(DEAD_LETTER_KEY_OPTION) or keys.dead_letter(DEFAULT_NAMESPACE)
        self._on_dead_letter: Callable[[str, str], None] | None = options.get(DEAD_LETTER_HOOK_OPTION)
        self._claim_rows: int = options.get(CLAIM_ROWS_OPTION) or 0
        # Unprefixed: the script's keys are prefixed here, all of them (kombu's prefixing
        # client would prefix only the first key of an EVALSHA).
        self._script_client = redis.Redis(connection_pool=self.pool)
        self._claim_script = self._script_client.register_script(_CLAIM)
        #: per order of the queues claimed from (the consumer rotates it): the queue of each
        #: queue key, in priority order, and the script's keys; built once, not at every claim
        self._claim_layouts: dict[tuple[str, ...], tuple[list[tuple[str, str]], list[str]]] = {}
        self._claim_queues: list[str] = []
        #: the queue of the message the last claim found (None: it found none): look again at once
        self._last_claimed: str | None = None
        self._sent = "BRPOP"  #: the command whose reply _brpop_read reads
        #: while a message is delivered: it is the last its claim took, and the claim left its
        #: queues empty (a gathering worker holds no message for company that is not there yet:
        #: worker/gather.py)
        self.delivering_last = False

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """kombu's, refusing with a connection error where the channel's connection is closed.
        A consumer that loses Redis collects its connection and then closes it: when the first
        close of a channel stops part way (a reply it cannot read), the second reconnects to
        put its delivered messages back, asking the transport, detached by then, for its URL;
        kombu's AttributeError there stops the worker, a connection error is ignored (the
        visibility timeout puts the messages back instead)."""
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the connection of this channel is closed")
        return super()._connparams(asynchronous)  # type: ignore[no-any-return]

    # -- producing: the message and its doorbell token in one round trip ----------------------

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, encode_entry(message))
            for command in self._ring(queue):
                pipe.execute_command(*command)
            if self._expires and queue in self._expires:
                for pri in self.priority_steps:
                    pipe.pexpire(self._q_for_pri(queue, pri), self._expires[queue])
            pipe.execute()

    def _ring(self, queue: str) -> list[tuple[Any, ...]]:
        """:func:`ring` for kombu's client, which adds ``global_keyprefix`` to LPUSH's key but
        not to LTRIM's."""
        push, (trim, bell, *bounds) = ring(queue)
        return [push, (trim, self.global_keyprefix + bell, *bounds)]

    # -- consuming: wait on the doorbells, then claim atomically ------------------------------

    def _brpop_start(self, timeout: float | None = None) -> None:
        self._claim_queues = self._queue_cycle.consume(len(self.active_queues))
        if not self._claim_queues:
            return
        if self._last_claimed is not None:
            # The last claim took all it could and messages are left: claim again without waiting
            # or taking a token (LLEN answers at once and changes nothing): the tokens are for the
            # workers that wait, and a backlog past BELL_KEEP messages has fewer than messages.
            command_args: list[Any] = ["LLEN", keys.queue_bell(self._last_claimed)]
        else:
            bells = [keys.queue_bell(queue) for queue in self._claim_queues]
            command_args = ["BRPOP", *bells, timeout or self.brpop_timeout or 0]
        self._sent = command_args[0]
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]  # kombu declares it None
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                # A token, or None when the wait timed out: claim either way.
                self.client.parse_response(self.client.connection, self._sent, **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next iteration reconnects
                raise
            messages, self._last_claimed = self._claim(self._claim_queues, self._credit())
            if not messages:
                raise Empty()
            self._queue_cycle.rotate(messages[-1][0])
            for i, (queue, payload) in enumerate(messages):
                self.delivering_last = i == len(messages) - 1 and self._last_claimed is None
                try:
                    self.connection._deliver(payload, queue)
                except BaseException:
                    self._put_back(messages[i + 1 :])
                    raise
            return True
        finally:
            self.delivering_last = False
            self._in_poll = None  # type: ignore[assignment]  # kombu's own reset, as in its _brpop_read
            self._flush_brpop_reauth()

    def _do_restore_message(
        self, payload: dict[str, Any], exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        """kombu's restore (a lapsed lease, a warm shutdown), writing aclq's entry format, with a
        doorbell token for each message put back, so a waiting worker takes it at once."""
        with contextlib.suppress(KeyError):
            payload["headers"]["redelivered"] = True
            payload["properties"]["delivery_info"]["redelivered"] = True
        try:
            queues = self._lookup(exchange, routing_key)
            entry = encode_entry(payload)
            pri = self._get_message_priority(payload, reverse=False)
        except self.connection_errors:
            raise  # aborts the transaction, which would otherwise drop the message from the books
        except Exception:
            log.critical("could not restore message %r", payload, exc_info=True)
            return
        for queue in queues:
            (pipe.lpush if leftmost else pipe.rpush)(self._q_for_pri(queue, pri), entry)
            for command in self._ring(queue):
                pipe.execute_command(*command)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        """``basic_get``: the same atomic claim, of one message of one queue."""
        while True:
            messages, more = self._claim([queue], 1)
            if messages:
                return messages[0][1]
            if more is None:
                raise Empty()

    def _credit(self) -> int:
        """How many messages a claim may take: as many as the consumer's prefetch limit has room
        for (Celery's worker: as many as its largest batch), so a backlog is taken a batch at a
        time, not a message a round trip. The claim also stops once the messages' rows fill
        ``CLAIM_ROWS_OPTION`` (a worker's largest batch): messages of many rows each, which run
        one an execution, are taken one at a time, so that a busy worker holds none that an
        idle one could be running."""
        room = self.qos.can_consume_max_estimate()
        return CLAIM_MAX if room is None else max(1, min(room, CLAIM_MAX))

    def _claim(self, queues: list[str], limit: int) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """Pop up to ``limit`` deliverable messages of ``queues``, in kombu's order, and record
        them as unacknowledged, in one step; dead-letter what cannot be delivered on the way.
        Returns (queue, message) for each, and the queue to claim from again at once when the
        claim took all it could and messages are left, else None (a one-message claim of the
        last message then waits on the doorbell rather than making a claim that finds nothing)."""
        order, script_keys = self._claim_layout(queues)
        args = (time.time(), DEAD_LETTER_KEEP, limit, len(queues), self._claim_rows, ROWS_HEADER)
        claim = ("EVALSHA", self._claim_script.sha, len(script_keys), *script_keys, *args)
        ((claimed, dead, left),) = round_trip(self._script_client, [claim], scripts=[_CLAIM])
        for key, reason in dead:
            self._dead_lettered(key.decode(errors="replace"), reason.decode(errors="replace"))
        _HELD.update(tag.decode() for _, _, tag in claimed)
        messages = []
        for found, raw, tag in claimed:
            queue, key = order[found - 1]
            try:
                payload = decode_entry(raw)
                self.Message(payload, channel=self)  # what kombu builds of it: its errors are the entry's
                messages.append((queue, payload))
            except Exception as exc:  # what the script let through and Python's JSON or kombu refuse
                _HELD.discard(tag.decode())
                with self._script_client.pipeline(transaction=True) as pipe:
                    pipe.zrem(script_keys[1], tag)
                    pipe.hdel(script_keys[0], tag)
                    reason = f"not a message to kombu: {type(exc).__name__}: {exc}"
                    self.dead_letter(self.global_keyprefix + key, reason, raw, pipe)
                    pipe.execute()
        more = order[claimed[-1][0] - 1][0] if left else None
        return messages, more

    def _claim_layout(self, queues: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """(queue, queue key) in kombu's priority order, and the claim script's keys."""
        layout = self._claim_layouts.get(tuple(queues))
        if layout is None:
            order = [(queue, self._q_for_pri(queue, pri)) for pri in self.priority_steps for queue in queues]
            prefix = self.global_keyprefix
            script_keys = [prefix + self.unacked_key, prefix + self.unacked_index_key, self._dead_letter_key]
            script_keys += [prefix + keys.queue_bell(queue) for queue in queues]
            script_keys += [prefix + key for _, key in order]
            layout = self._claim_layouts[tuple(queues)] = (order, script_keys)
        return layout

    def _put_back(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Return claimed messages that were never delivered (delivering an earlier one of their
        claim failed) to their queues; where Redis is gone, their leases lapse instead."""
        for _, payload in reversed(messages):  # each goes to the front of its queue: in order
            tag = payload["properties"]["delivery_tag"]
            try:
                self.qos.restore_by_tag(tag)  # no longer held either way
            except Exception:  # noqa: BLE001 - the visibility timeout restores it then
                log.warning("could not put back claimed message %s; its lease lapses instead", tag, exc_info=True)

    def dead_letter(self, queue_key: str, reason: str, entry: bytes, pipe: Any = None) -> None:
        """Move a queue entry that is no message to the dead-letter list, logged once and counted
        (on ``pipe`` when given, for the caller to execute)."""
        record = msgpack.packb({"queue": queue_key, "reason": reason, "entry": entry, "at": str(time.time())})
        with contextlib.ExitStack() as stack:
            target = pipe if pipe is not None else stack.enter_context(self._script_client.pipeline())
            target.lpush(self._dead_letter_key, record)
            target.ltrim(self._dead_letter_key, 0, DEAD_LETTER_KEEP - 1)
            if pipe is None:
                target.execute()
        self._dead_lettered(queue_key, reason)

    def _dead_lettered(self, queue_key: str, reason: str) -> None:
        log.error("a queue entry of %r is not a message (%s); moved to %s", queue_key, reason, self._dead_letter_key)
        if self._on_dead_letter is not None:
            self._on_dead_letter(queue_key, reason)


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`; selected by ``broker_transport``."""

    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """:class:`Channel` connected to the primary that Redis Sentinel names (kombu's Sentinel
    channel finds it), asking the sentinels again at every reconnection."""

    connection_class = PrimaryConnection


class SentinelTransport(Transport):
    """:class:`Transport` for ``sentinel://`` URLs (kombu's ``master_name`` transport option)."""

    Channel = SentinelChannel
    default_port = kombu_redis.SentinelTransport.default_port  # type: ignore[assignment]  # kombu says None

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        # The sentinels of a ``sentinel://a;sentinel://b`` URL are one service, which the
        # channel asks in turn; to kombu's connection they look like alternative brokers, and
        # its switch to the "next" one after a connection error re-reads the transport from the
        # URL's scheme: kombu's own, which cannot read aclq's queue entries. No switching.
        client.cycle = None


def dead_letters(client: redis.Redis, key: str, count: int = 10) -> list[dict[str, Any]]:
    """The newest ``count`` dead-lettered entries: queue, reason, entry (the bytes as they lay in
    the queue), at (Unix time)."""
    records = []
    for raw in client.lrange(key, 0, count - 1):
        record = {k.decode(): v for k, v in msgpack.unpackb(raw, raw=True).items()}
        records.append(
            {
                **record,
                "queue": record["queue"].decode(errors="replace"),
                "reason": record["reason"].decode(errors="replace"),
                "at": float(record["at"]),
            }
        )
    return records
