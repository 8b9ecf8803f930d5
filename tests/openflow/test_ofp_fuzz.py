"""Fuzzing: whatever the bytes, the decoder returns a message or its own refusal, and the
channel engine returns events; nothing else ever comes out of the codec."""

from __future__ import annotations

import struct

from fata_openflow_switch import messages as M
from fata_openflow_switch.connection import Closed, Connection, Negotiated, Received, Rejected
from fata_openflow_switch.ofp_const import ERROR_CODES, MsgType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._strategies import any_message

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSAGES = any_message()  # built once: a strategy is validated when first drawn from


def check_decode(data: bytes) -> M.Message | M.Malformed:
    """Decode ``data``; a message must survive its own encoding, a refusal must name a
    specified error for the offending xid with its first 64 bytes."""
    result = M.decode_message(data)
    if isinstance(result, M.Malformed):
        err = result.error
        assert err.type in ERROR_CODES and err.code in set(ERROR_CODES[err.type])
        assert err.data == data[:64]
        if len(data) >= 8:
            assert err.xid == struct.unpack_from("!I", data, 4)[0]
        assert isinstance(result.reason, str) and result.reason
        return result
    assert isinstance(result, M.Message)
    again = result.encode(data[0])
    assert M.decode_message(again) == result  # what was read is what is written
    if again != data:  # only padding may differ, and then only where data was non-zero
        assert len(again) == len(data)
        assert all(a == b or a == 0 for a, b in zip(again, data, strict=True))
    return result


def relength(data: bytes) -> bytes:
    """``data`` with the header's length made right, so the body parser gets to work."""
    if len(data) < 4:
        return data
    return data[:2] + struct.pack("!H", min(len(data), 0xFFFF)) + data[4:]


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check_decode(data)
    check_decode(relength(data))


@FUZZ
@given(st.sampled_from(sorted(MsgType)), st.binary(max_size=200), st.integers(0, 0xFFFFFFFF))
def test_random_bodies_of_every_type(msg_type: int, body: bytes, xid: int) -> None:
    check_decode(struct.pack("!BBHI", 4, msg_type, 8 + len(body), xid) + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with bytes flipped, cut, inserted or appended, its length fixed up."""
    data = bytearray(draw(MESSAGES).encode())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "append", "set16"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=16))
        elif kind == "set16" and pos + 2 <= len(data):  # a length or type field, most likely
            data[pos:pos + 2] = struct.pack("!H", draw(st.sampled_from([0, 1, 4, 7, 8, 0xFFFF])))
    data = bytes(data)
    return relength(data) if len(data) >= 8 and draw(st.booleans()) else data


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    check_decode(data)


@FUZZ
@given(st.lists(mutated() | st.binary(max_size=40), max_size=6), st.data())
def test_the_channel_only_ever_returns_events(chunks: list[bytes], data: st.DataObject) -> None:
    conn = Connection()
    stream = M.Hello((M.VersionBitmap.of({4}),)).encode() + b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    events = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += conn.receive_data(stream[start:end])
        out = conn.data_to_send()
        while out:  # whatever the engine sends is whole, well-formed messages
            length = struct.unpack_from("!H", out, 2)[0]
            assert length >= 8
            if out[0] == 4:  # a HELLO_FAILED goes out in the peer's version
                assert not isinstance(M.decode_message(out[:length]), M.Malformed)
            out = out[length:]
    assert events[0] == Negotiated(4)
    assert all(isinstance(e, Received | Rejected | Closed) for e in events[1:])
    assert all(not isinstance(e, Closed) for e in events[:-1])  # nothing after the end
