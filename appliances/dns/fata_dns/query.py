"""Strict parser for incoming queries (RFC 1035 section 4.1, RFC 6891 for OPT).

Every malformation becomes a typed outcome, never an arbitrary exception: :class:`Drop`
when not even a header can be read (or the message is a response, which must never be
answered), :class:`FormErr` when the header is readable but the rest is not.
"""

from __future__ import annotations

import struct

from fata_dns.names import MAX_NAME, Budget, read_name, skip_name
from fata_dns.records import OPT

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


class Drop(Exception):
    """Not answerable at all: no header, or a response (QR set)."""


class FormErr(Exception):
    """A readable header with a malformed body: answer FORMERR.

    ``question`` is the question's wire form if it could be read (echoed in the answer),
    ``edns`` whether a single well-formed OPT was seen (our answer then carries OPT too).
    """

    def __init__(self, reason: str, msg_id: bytes, flags: int, question: bytes | None = None,
                 edns: bool = False) -> None:
        super().__init__(reason)
        self.msg_id = msg_id
        self.flags = flags
        self.question = question
        self.edns = edns


class Edns:
    """The OPT record of a query."""

    __slots__ = ("do", "ext_rcode", "payload", "version")

    def __init__(self, payload: int, version: int, do: bool, ext_rcode: int) -> None:
        self.payload = payload
        self.version = version
        self.do = do
        self.ext_rcode = ext_rcode


class Query:
    """A parsed query.  ``question`` is name (as sent, decompressed) + type + class."""

    __slots__ = (
        "counts",
        "edns",
        "flags",
        "msg_id",
        "opcode",
        "qclass",
        "qname",
        "qtype",
        "question",
    )

    def __init__(self, msg_id: bytes, flags: int, qname: bytes, qtype: int, qclass: int,
                 question: bytes, edns: Edns | None, counts: tuple[int, int, int, int]) -> None:
        self.msg_id = msg_id
        self.flags = flags
        self.opcode = (flags >> 11) & 0xF
        self.qname = qname
        self.qtype = qtype
        self.qclass = qclass
        self.question = question
        self.edns = edns
        self.counts = counts


def question_end(msg: bytes, checked: bool = True) -> int:
    """Where the question of ``msg`` (name, type, class, from offset 12) ends, or -1 when its
    name is not written out in full inside ``msg`` (then :func:`parse_query`'s general name
    reader decides: a compression pointer, or the FORMERR reason).

    The one reader of the question: the full parser, the memo lookup, the NXDOMAIN
    shortcut and the transfer check over TCP all take it as ``msg[12:end]``, its name as
    ``msg[12:end - 4]``.  ``checked`` walks the labels (each at most 63 octets, the name at
    most 255).  Without it the name is taken to end at the first zero byte, which is one
    ``bytes.find`` and is right whenever the walk would succeed; the caller must prove the
    guess otherwise, as the memo lookup does (its keys are all valid names, and a label walk
    is determined by the bytes, so a hit proves the name ends where the guess says).
    """
    n = len(msg)
    if not checked:  # the memo lookup's path: one C call
        end = msg.find(0, 12) + 5
        return end if 4 < end <= n else -1
    pos = 12
    while True:
        if pos >= n:
            return -1
        length = msg[pos]
        if not length:
            break
        if length > 63:
            return -1
        pos += length + 1
    end = pos + 5
    return end if end <= n and pos - 11 <= MAX_NAME else -1


def parse_query(msg: bytes, budget: Budget | None = None) -> Query:
    """Parse ``msg``; raise :class:`Drop` or :class:`FormErr` if it is not a usable query.

    Bounded work (issue 12): the names are read under one :class:`~fata_dns.names.Budget`
    for the message (``Budget.for_message(msg)`` unless the caller passes one, whose
    ``steps`` then tell the work done), and only what a query can need is decompressed:
    the question and the OPT owner.  The records of the answer and authority sections and
    the other additional records (a TSIG, which this server does not verify, or anything
    else) are skipped by their RDLENGTH, their owner names walked in place
    (:func:`~fata_dns.names.skip_name`) and never followed through compression pointers.
    """
    if len(msg) < 12:
        raise Drop("shorter than a DNS header")
    _, flags, qd, an, ns, ar = _HEADER.unpack_from(msg, 0)
    msg_id = msg[:2]
    if flags & 0x8000:
        raise Drop("a response, not a query")
    if qd != 1:
        raise FormErr("QDCOUNT is not 1", msg_id, flags)
    if budget is None:
        budget = Budget.for_message(msg)
    n = len(msg)
    offset = question_end(msg)
    if offset > 0:
        question = msg[12:offset]
        qname = question[:-4]
    else:  # a compressed name (a pointer into the header), or a malformed question
        try:
            qname, offset = read_name(msg, 12, budget)
        except ValueError as exc:
            raise FormErr(f"question name: {exc}", msg_id, flags) from None
        if offset + 4 > n:
            raise FormErr("truncated question", msg_id, flags)
        question = qname + msg[offset : offset + 4]
        offset += 4
    qtype, qclass = struct.unpack_from("!HH", msg, offset - 4)
    edns: Edns | None = None
    try:
        for _ in range(an + ns):
            offset = skip_name(msg, offset, budget)
            if offset + 10 > n:
                raise ValueError("truncated record")
            rtype, _, _, rdlen = _RR.unpack_from(msg, offset)
            if rtype == OPT:
                raise ValueError("OPT outside the additional section")
            offset += 10 + rdlen
            if offset > n:
                raise ValueError("record data runs past the end")
        for _ in range(ar):
            start = offset
            offset = skip_name(msg, offset, budget)
            if offset + 10 > n:
                raise ValueError("truncated record")
            rtype, rclass, ttl, rdlen = _RR.unpack_from(msg, offset)
            offset += 10
            end = offset + rdlen
            if end > n:
                raise ValueError("record data runs past the end")
            if rtype == OPT:
                if edns is not None:
                    edns = None  # answered without OPT, as BIND and Knot do
                    raise ValueError("more than one OPT record")  # RFC 6891 section 6.1.1
                # The one owner a query needs decompressed: it must be the root.
                if msg[start] and read_name(msg, start, budget)[0] != b"\x00":
                    raise ValueError("OPT owner is not the root")
                pos = offset
                while pos < end:
                    if pos + 4 > end:
                        raise ValueError("truncated EDNS option")
                    pos += 4 + int.from_bytes(msg[pos + 2 : pos + 4], "big")
                if pos != end:
                    raise ValueError("EDNS option runs past the OPT record")
                edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & 0x8000), ttl >> 24)
            offset = end
        if offset != n:
            raise ValueError("trailing bytes after the last record")
    except ValueError as exc:
        raise FormErr(str(exc), msg_id, flags, question, edns is not None) from None
    return Query(msg_id, flags, qname, qtype, qclass, question, edns, (qd, an, ns, ar))
