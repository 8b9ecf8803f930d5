"""``question_end``: the one reader of the question section, against the general name reader."""

from __future__ import annotations

import dns.message
import pytest
from fata_dns.names import read_name
from fata_dns.query import FormErr, parse_query, question_end
from hypothesis import given, settings
from hypothesis import strategies as st

HEADER = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def test_plain_questions() -> None:
    wire = dns.message.make_query("www.Example.org", "AAAA", use_edns=0).to_wire()
    end = question_end(wire)
    assert end == 12 + 17 + 4 == question_end(wire, False)
    assert wire[12 : end - 4] == b"\x03www\x07Example\x03org\x00"
    assert wire[end - 4 : end] == b"\x00\x1c\x00\x01"
    root = HEADER + b"\x00\x00\x02\x00\x01"
    assert question_end(root) == 17


@pytest.mark.parametrize(("body", "why"), [
    (b"", "nothing"),
    (b"\x03www", "name runs past the end"),
    (b"\x03www\x00\x00\x01\x00", "class cut short"),
    (b"\xc0\x04\x00\x01\x00\x01", "compression pointer"),
    (b"\x40abc\x00\x00\x01\x00\x01", "extended label type"),
    (b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63
     + b"\x00\x00\x01\x00\x01", "longer than 255 octets"),
])
def test_questions_it_leaves_to_the_general_reader(body: bytes, why: str) -> None:
    assert question_end(HEADER + body) == -1, why


def test_a_zero_byte_inside_a_label_fools_only_the_unchecked_guess() -> None:
    msg = HEADER + b"\x03w\x00w\x00\x00\x01\x00\x01"
    assert question_end(msg, False) == 12 + 2 + 5  # the guess, which no memo key matches
    assert question_end(msg) == 12 + 5 + 4  # the label walk is right
    q = parse_query(msg)
    assert q.qname == b"\x03w\x00w\x00" and q.qtype == 1


def test_a_compressed_question_still_parses() -> None:
    # A pointer into the header (offset 4 holds 0x00: the root name), as read_name allows.
    q = parse_query(HEADER + b"\xc0\x04\x00\x02\x00\x01")
    assert q.qname == b"\x00" and q.qtype == 2 and q.question == b"\x00\x00\x02\x00\x01"
    with pytest.raises(FormErr, match="unsupported label type"):
        parse_query(HEADER + b"\x40abc\x00\x00\x01\x00\x01")
    with pytest.raises(FormErr, match="truncated question"):
        parse_query(HEADER + b"\x03www\x00\x00\x01\x00")


@settings(max_examples=2000, deadline=None)
@given(body=st.binary(max_size=80), labels=st.lists(
    st.binary(min_size=1, max_size=63), max_size=5))
def test_agrees_with_read_name(body: bytes, labels: list[bytes]) -> None:
    name = b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
    for msg in (HEADER + body, HEADER + name + body):
        end = question_end(msg)
        guess = question_end(msg, False)
        if end < 0:
            continue
        assert guess <= end  # the guess stops at the first zero byte, never later
        qname, offset = read_name(msg, 12)
        assert (qname, offset + 4) == (msg[12 : end - 4], end)
