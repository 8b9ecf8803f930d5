"""The xenstore wire protocol: framing in any split, the payload limit, replies and errors."""

from __future__ import annotations

import struct

import pytest
from fata.xen.xs_wire import (
    ERRORS,
    HEADER,
    PAYLOAD_MAX,
    Message,
    MessageReader,
    Op,
    WireError,
    XenstoreError,
    strings_payload,
    watch_event,
)
from hypothesis import given
from hypothesis import strategies as st

MESSAGES = st.builds(Message, st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
                     st.integers(0, 2**32 - 1), st.binary(max_size=PAYLOAD_MAX))


def test_the_header_is_four_little_endian_words() -> None:
    msg = Message(Op.WRITE, 7, 3, strings_payload([b"/a/b", b"v"], terminate_last=False))
    assert msg.encode() == struct.pack("<IIII", 11, 7, 3, 6) + b"/a/b\0v"
    assert msg.strings() == [b"/a/b", b"v"]
    assert Op.RESET_WATCHES == 21 and Op.DIRECTORY_PART == 22 and HEADER.size == 16


@given(st.lists(MESSAGES, max_size=8), st.data())
def test_messages_survive_any_split(messages: list[Message], data) -> None:
    stream = b"".join(m.encode() for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = MessageReader()
    got: list[Message] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += list(reader.feed(stream[start:end]))
    assert got == messages and reader.pending == 0


def test_an_oversized_payload_breaks_the_stream() -> None:
    reader = MessageReader()
    head = HEADER.pack(Op.READ, 1, 0, PAYLOAD_MAX + 1)
    with pytest.raises(WireError, match="4097 bytes"):
        list(reader.feed(head))
    with pytest.raises(WireError, match="earlier"):
        list(reader.feed(Message(Op.READ, 2, 0, b"/\0").encode()))
    with pytest.raises(WireError):
        Message(Op.WRITE, 1, 0, b"x" * (PAYLOAD_MAX + 1)).encode()


def test_replies_keep_the_ids_and_errors_are_the_standard_names() -> None:
    req = Message(Op.READ, 42, 9, b"/nope\0")
    assert req.reply(b"value") == Message(Op.READ, 42, 9, b"value")
    assert req.error("ENOENT") == Message(Op.ERROR, 42, 9, b"ENOENT\0")
    assert ERRORS[0] == "EINVAL" and ERRORS[-1] == "EPERM" and len(ERRORS) == 16
    with pytest.raises(ValueError):
        req.error("EWHATEVER")
    assert XenstoreError("EAGAIN").code == "EAGAIN"
    assert watch_event(b"/a", b"tok") == Message(Op.WATCH_EVENT, 0, 0, b"/a\0tok\0")


@given(st.binary(max_size=200))
def test_garbage_gives_messages_or_a_wire_error(data: bytes) -> None:
    reader = MessageReader()
    try:
        for msg in reader.feed(data):
            assert len(msg.payload) <= PAYLOAD_MAX
    except WireError:
        assert reader.broken
