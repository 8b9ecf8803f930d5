"""The OpenFlow channel engine: HELLO and version negotiation, framing in any split, and the
errors a stream's bad messages get while the channel goes on."""

from __future__ import annotations

import struct

import pytest
from fata_openflow_switch import messages as M
from fata_openflow_switch.connection import (
    Closed,
    Connection,
    Negotiated,
    Received,
    Rejected,
    State,
    negotiate,
)
from fata_openflow_switch.ofp_const import BadRequestCode, ErrorType, HelloFailedCode, MsgType
from fata_openflow_switch.wire import Reader
from hypothesis import given, settings
from hypothesis import strategies as st

from ._strategies import any_message

OUR_HELLO = bytes.fromhex("0400001000000000" "0001000800000010")  # version 4, bitmap {4}


def hello(versions: set[int] | None, version: int = 4, xid: int = 1) -> bytes:
    elements = () if versions is None else (M.VersionBitmap.of(versions),)
    return M.Hello(elements, xid=xid).encode(version)


def opened() -> Connection:
    conn = Connection()
    assert conn.receive_data(hello({4})) == [Negotiated(4)]
    assert conn.data_to_send() == OUR_HELLO
    return conn


def errors_in(data: bytes) -> list[M.ErrorMsg]:
    """The ERROR messages in a stream of whole messages (of any header version)."""
    out = []
    while data:
        length = struct.unpack_from("!H", data, 2)[0]
        if data[1] == MsgType.ERROR:
            xid = struct.unpack_from("!I", data, 4)[0]
            out.append(M.ErrorMsg.decode_body(Reader(data[:length], pos=8), xid))
        data = data[length:]
    return out


def test_our_hello_goes_out_first_with_a_version_bitmap() -> None:
    conn = Connection(hello_xid=9)
    assert conn.data_to_send() == OUR_HELLO[:4] + b"\0\0\0\x09" + OUR_HELLO[8:]
    assert conn.data_to_send() == b"" and conn.state is State.AWAIT_HELLO


@pytest.mark.parametrize(("versions", "version", "agreed"), [
    ({4}, 4, 4), ({1, 4, 5}, 5, 4), ({4, 6}, 6, 4), (None, 4, 4), (None, 6, 4),
    ({1, 2, 3}, 3, None), ({5, 6}, 6, None), (None, 1, None), (None, 3, None), (set(), 4, None),
])
def test_negotiation_is_the_specifications(versions: set[int] | None, version: int,
                                           agreed: int | None) -> None:
    peer = M.decode_message(hello(versions, version))
    assert isinstance(peer, M.Hello)
    assert negotiate({4}, version, peer) == agreed
    conn = Connection()
    events = conn.receive_data(hello(versions, version))
    assert (events == [Negotiated(4)]) if agreed else isinstance(events[0], Closed)


@pytest.mark.parametrize(("ours", "versions", "version", "agreed"), [
    ({1, 4}, {1, 5}, 5, 1),  # the highest both bitmaps share
    ({1, 4, 6}, {4, 6}, 6, 6),
    ({1, 4}, None, 1, 1),  # no bitmap from the peer: the smaller header version
    ({1, 4}, None, 3, None),  # ... which we must speak
])
def test_negotiation_with_several_versions_of_our_own(ours: set[int], versions: set[int] | None,
                                                      version: int, agreed: int | None) -> None:
    peer = M.decode_message(hello(versions, version))
    assert isinstance(peer, M.Hello) and negotiate(ours, version, peer) == agreed


def test_no_common_version_is_hello_failed_in_the_peers_version_then_closed() -> None:
    conn = Connection()
    conn.data_to_send()
    events = conn.receive_data(hello({1, 2}, version=2, xid=44) + M.FeaturesRequest().encode())
    assert len(events) == 1 and isinstance(events[0], Closed)
    out = conn.data_to_send()
    assert out[:2] == b"\x02\x01"  # the peer's version, OFPT_ERROR
    assert struct.unpack_from("!IHH", out, 4) == (44, ErrorType.HELLO_FAILED,
                                                 HelloFailedCode.INCOMPATIBLE)
    assert b"no common version" in out
    assert conn.state is State.CLOSED and conn.receive_data(hello({4})) == []
    with pytest.raises(RuntimeError):
        conn.send(M.EchoRequest())


@pytest.mark.parametrize("first", [M.FeaturesRequest(xid=3).encode(),
                                   M.Hello(xid=3).encode()[:2] + b"\x00\x0b\x00\x00\x00\x03\x00\x01\x00"])
def test_a_first_message_that_is_no_readable_hello_fails_the_hello(first: bytes) -> None:
    conn = Connection()
    conn.data_to_send()
    assert [type(e) for e in conn.receive_data(first)] == [Closed]
    err = errors_in(conn.data_to_send())[0]
    assert (err.type, err.code, err.xid) == (ErrorType.HELLO_FAILED, HelloFailedCode.INCOMPATIBLE, 3)


@settings(max_examples=50)
@given(st.lists(any_message(), max_size=6), st.data())
def test_messages_come_out_whole_in_any_split(messages: list[M.Message], data: st.DataObject) -> None:
    stream = hello({4}) + b"".join(m.encode() for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    conn = Connection()
    events = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += conn.receive_data(stream[start:end])
    assert events == [Negotiated(4), *(Received(m) for m in messages)]
    assert conn.pending == 0


def test_a_length_under_8_is_bad_len_and_ends_the_stream() -> None:
    conn = opened()
    bad = struct.pack("!BBHI", 4, MsgType.ECHO_REQUEST, 7, 21) + b"junk"
    events = conn.receive_data(M.EchoRequest(xid=20).encode() + bad)
    assert events[0] == Received(M.EchoRequest(xid=20)) and isinstance(events[1], Closed)
    (err,) = errors_in(conn.data_to_send())
    assert (err.type, err.code, err.xid) == (1, BadRequestCode.BAD_LEN, 21)
    assert err.data == bad[:8 + 4]
    assert conn.receive_data(M.EchoRequest().encode()) == []


@pytest.mark.parametrize(("bad", "code"), [
    (struct.pack("!BBHI", 4, MsgType.BARRIER_REQUEST, 16, 5) + bytes(8), BadRequestCode.BAD_LEN),
    (struct.pack("!BBHI", 4, MsgType.FEATURES_REQUEST, 9, 5) + b"x", BadRequestCode.BAD_LEN),
    (struct.pack("!BBHI", 4, 30, 8, 5), BadRequestCode.BAD_TYPE),
    (struct.pack("!BBHI", 4, 200, 12, 5) + bytes(4), BadRequestCode.BAD_TYPE),
    (struct.pack("!BBHI", 5, MsgType.BARRIER_REQUEST, 8, 5), BadRequestCode.BAD_VERSION),
    (struct.pack("!BBHI", 1, MsgType.ECHO_REQUEST, 8, 5), BadRequestCode.BAD_VERSION),
    (struct.pack("!BBHI", 4, MsgType.MULTIPART_REQUEST, 16, 5) + struct.pack("!HH4x", 99, 0),
     BadRequestCode.BAD_MULTIPART),
])
def test_a_bad_message_is_answered_and_the_channel_goes_on(bad: bytes, code: int) -> None:
    conn = opened()
    events = conn.receive_data(bad + M.BarrierRequest(xid=6).encode())
    assert isinstance(events[0], Rejected) and events[0].malformed.err == (1, code)
    assert events[1:] == [Received(M.BarrierRequest(xid=6))]
    (err,) = errors_in(conn.data_to_send())
    assert (err.type, err.code, err.xid, err.data) == (1, code, 5, bad[:64])
    assert conn.state is State.OPEN


def test_error_data_is_the_first_64_bytes() -> None:
    conn = opened()
    bad = struct.pack("!BBHI", 4, MsgType.GET_CONFIG_REQUEST, 108, 8) + bytes(100)
    conn.receive_data(bad)
    (err,) = errors_in(conn.data_to_send())
    assert err.data == bad[:64] and len(err.data) == 64


def test_sending_queues_messages_and_close_is_a_transition() -> None:
    conn = opened()
    conn.send(M.EchoReply(b"hi", xid=3))
    conn.send(M.BarrierReply(xid=4))
    assert conn.data_to_send() == M.EchoReply(b"hi", xid=3).encode() + M.BarrierReply(xid=4).encode()
    assert conn.close("done") == Closed("done")
    with pytest.raises(RuntimeError, match="closed to closed"):
        conn.close()
