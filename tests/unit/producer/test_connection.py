"""How aclq's Redis clients put commands on the wire (no server needed: packing only)."""

import hiredis
import pytest
import redis

from producer.connection import JOIN_BELOW_BYTES, LARGE_ARGUMENT_BYTES, REDIS_OPTIONS, CommandPacker, _packed


def test_small_commands_are_packed_by_hiredis_and_a_large_value_is_sent_as_its_own_buffer():
    packer = CommandPacker()
    assert REDIS_OPTIONS["command_packer"].__class__ is CommandPacker
    claim = ("EVALSHA", "a" * 40, 2, "ns:job:1:state", "ns:job:1:runs", "run", 3600, b"running", 1.5)
    assert b"".join(packer.pack(*claim)) == hiredis.pack_command(claim)
    value = b"x" * (LARGE_ARGUMENT_BYTES + 1)
    chunks = packer.pack("SET", "ns:job:1:in", value, "NX")
    assert any(chunk is value for chunk in chunks)  # not copied into a command buffer
    assert b"".join(chunks) == hiredis.pack_command(("SET", "ns:job:1:in", value, "NX"))


def test_a_round_trip_is_one_write_of_its_small_commands_around_its_large_values_uncopied():
    def wire(*commands: tuple) -> bytes:
        return b"".join(hiredis.pack_command(c) for c in commands)

    small = [("SET", "ns:job:1:state", "queued", "NX", "EX", 3600), ("LPUSH", "ns:q", b"m" * 100)]
    big = memoryview(b"x" * (JOIN_BELOW_BYTES + 1))
    writes = _packed([*small, ("SET", "ns:job:1:in", big), ("EXPIRE", "ns:job:1:in", 60), *small])
    assert [w is big for w in writes] == [False, True, False]  # the value as it was given, alone
    assert writes[0] == wire(*small) + b"*3\r\n$3\r\nSET\r\n$11\r\nns:job:1:in\r\n$%d\r\n" % len(big)
    assert writes[2] == b"\r\n" + wire(("EXPIRE", "ns:job:1:in", 60), *small)
    mid = b"y" * (LARGE_ARGUMENT_BYTES + 1)  # large for hiredis, small enough to join: one write
    assert _packed([("SET", "k", mid), ("GET", "k")]) == [wire(("SET", "k", mid), ("GET", "k"))]


def test_an_argument_redis_cannot_take_is_refused_before_anything_is_sent():
    with pytest.raises(redis.DataError, match="SET"):
        _packed([("GET", "k"), ("SET", "k", None)])
