"""Wire rendering of responses: name compression, size limits, truncation, OPT.

Truncation follows RFC 2181 section 9 and RFC 9471: answer and authority are all or
nothing (if they do not fit, the response carries the question only, with TC); additional
RRsets are added while they fit, and TC is set only when in-domain glue of a referral does
not fit.  RRsets are never split.
"""

from __future__ import annotations

import struct

from fata_dns.lookup import Answer
from fata_dns.records import COMPRESSIBLE, OPT, RRset, rdata_names

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
CD = 0x0010
OPCODE_MASK = 0x7800
SERVER_UDP_SIZE = 1232  # advertised EDNS payload size (DNS flag day 2020)

_RR_FIXED = struct.Struct("!HHIH")
_COUNTS = struct.Struct("!HHHH")


class Writer:
    """A message under construction, with RFC 1035 section 4.1.4 name compression."""

    __slots__ = ("buf", "comp")

    def __init__(self) -> None:
        self.buf = bytearray(12)
        self.comp: dict[bytes, int] = {}

    def name(self, name: bytes) -> None:
        """Append ``name`` (wire, any case), compressed against earlier names."""
        key = name.lower()
        buf = self.buf
        comp = self.comp
        start = len(buf)
        i = 0
        while key[i]:
            off = comp.get(key[i:])
            if off is not None:
                buf += name[:i]
                buf += (0xC000 | off).to_bytes(2, "big")
                return
            if start + i < 0x4000:
                comp[key[i:]] = start + i
            i += key[i] + 1
        buf += name

    def rrset(self, rrset: RRset) -> int:
        """Append every record of ``rrset``; return how many."""
        buf = self.buf
        rtype = rrset.rtype
        fixed = _RR_FIXED.pack(rtype, 1, rrset.ttl, 0)[:-2]
        compressible = rtype in COMPRESSIBLE
        for rdata in rrset.rdatas:
            self.name(rrset.owner)
            buf += fixed
            at = len(buf)
            buf += b"\x00\x00"
            if compressible:
                pos = 0
                for start, end in rdata_names(rtype, rdata):
                    buf += rdata[pos:start]
                    self.name(rdata[start:end])
                    pos = end
                buf += rdata[pos:]
            else:
                buf += rdata
            buf[at : at + 2] = (len(buf) - at - 2).to_bytes(2, "big")
        return len(rrset.rdatas)

    def rollback(self, mark: int) -> None:
        """Forget everything written after ``mark``, compression targets included."""
        del self.buf[mark:]
        stale = [k for k, off in self.comp.items() if off >= mark]
        for k in stale:
            del self.comp[k]


def opt_record(do: bool, ext_rcode: int = 0) -> bytes:
    """Our OPT pseudo-record (RFC 6891 section 6.1.2): version 0, no options."""
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return b"\x00" + _RR_FIXED.pack(OPT, SERVER_UDP_SIZE, ttl, 0)


def render(question: bytes, ans: Answer, limit: int, opt: bytes | None, opcode_flags: int = 0
           ) -> tuple[int, bytes, bytes]:
    """Render ``ans`` below ``limit`` octets.

    ``question`` is the lowercase question (name, type, class); returns (flags without ID
    or the RD/CD bits the query contributes, the four counts, everything after the question).
    """
    w = Writer()
    name_end = len(question) - 4
    w.name(question[:name_end])
    w.buf += question[name_end:]
    after_question = len(w.buf)
    reserve = len(opt) if opt is not None else 0
    counts = [1, 0, 0, 0]
    tc = False
    buf = w.buf
    for section, rrsets in ((1, ans.answer), (2, ans.authority)):
        for rrset in rrsets:
            mark = len(buf)
            n = w.rrset(rrset)
            if len(buf) + reserve > limit:
                w.rollback(mark)
                tc = True
                break
            counts[section] += n
        if tc:
            break
    if tc:
        w.rollback(after_question)
        counts = [1, 0, 0, 0]
    else:
        for rrset in ans.additional:
            mark = len(buf)
            n = w.rrset(rrset)
            if len(buf) + reserve > limit:
                w.rollback(mark)
                if rrset.owner in ans.required:
                    tc = True
                continue
            counts[3] += n
    if opt is not None:
        buf += opt
        counts[3] += 1
    flags = QR | opcode_flags | (AA if ans.aa else 0) | (TC if tc else 0) | (ans.rcode & 0xF)
    return flags, _COUNTS.pack(*counts), bytes(buf[len(question) + 12 :])


def header_only(msg_id: bytes, flags: int, question: bytes | None, opt: bytes | None) -> bytes:
    """A response with no records: errors (FORMERR, NOTIMP, REFUSED, BADVERS ...)."""
    counts = (1 if question else 0, 0, 0, 1 if opt else 0)
    return msg_id + flags.to_bytes(2, "big") + _COUNTS.pack(*counts) + (question or b"") + (
        opt or b"")
