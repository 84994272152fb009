"""How aclq's Redis clients put commands on the wire (no server needed: packing only)."""

import hiredis

from producer.connection import LARGE_ARGUMENT_BYTES, REDIS_OPTIONS, CommandPacker


def test_small_commands_are_packed_by_hiredis_and_a_large_value_is_sent_as_its_own_buffer():
    packer = CommandPacker()
    assert REDIS_OPTIONS["command_packer"].__class__ is CommandPacker
    claim = ("EVALSHA", "a" * 40, 2, "ns:job:1:state", "ns:job:1:runs", "run", 3600, b"running", 1.5)
    assert b"".join(packer.pack(*claim)) == hiredis.pack_command(claim)
    value = b"x" * (LARGE_ARGUMENT_BYTES + 1)
    chunks = packer.pack("SET", "ns:job:1:in", value, "NX")
    assert any(chunk is value for chunk in chunks)  # not copied into a command buffer
    assert b"".join(chunks) == hiredis.pack_command(("SET", "ns:job:1:in", value, "NX"))
