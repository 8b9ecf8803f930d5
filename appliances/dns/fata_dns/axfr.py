"""Zone transfer (AXFR, RFC 5936) message generation.

The transfer of a zone is the same for every client apart from the message ID and the
case of the question, so the messages are built once per loaded zone and patched per
request by :class:`fata_dns.server.Server`.
"""

from __future__ import annotations

import struct

from fata_dns.records import AXFR, SOA
from fata_dns.render import Writer
from fata_dns.zone import Zone

MESSAGE_TARGET = 16_384  # bytes per message before starting the next (65535 is the limit)


def transfer_messages(zone: Zone) -> list[bytes]:
    """The AXFR response messages of ``zone``: SOA, every other RRset, SOA again.

    Each message is complete except its ID and flags (zero here); the first carries the
    question (origin, AXFR, IN), the others none (RFC 5936 section 2.2).
    """
    question = zone.origin + struct.pack("!HH", AXFR, 1)
    rrsets = [zone.soa]
    rrsets += [rr for rr in zone.records if rr.rtype != SOA or rr.owner != zone.origin]
    rrsets.append(zone.soa)
    messages: list[bytes] = []
    w = _start(question)
    count = 0
    for rrset in rrsets:
        for rdata in rrset.rdatas:
            one = type(rrset)(rrset.owner, rrset.rtype, rrset.ttl, (rdata,))
            mark = len(w.buf)
            w.rrset(one)
            if len(w.buf) > MESSAGE_TARGET and count:
                w.rollback(mark)
                messages.append(_finish(w, count, bool(not messages)))
                w = _start(None)
                w.rrset(one)
                count = 0
            count += 1
    messages.append(_finish(w, count, bool(not messages)))
    return messages


def _start(question: bytes | None) -> Writer:
    w = Writer()
    if question is not None:
        w.name(question[:-4])
        w.buf += question[-4:]
    return w


def _finish(w: Writer, count: int, has_question: bool) -> bytes:
    w.buf[4:12] = struct.pack("!HHHH", 1 if has_question else 0, count, 0, 0)
    return bytes(w.buf)
