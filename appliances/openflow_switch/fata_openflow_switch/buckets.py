"""Group buckets (``ofp_bucket``, specification 1.3.5, 7.3.4.2), as group-mod and the
group-description reply carry them.

A bucket's ``len`` that is shorter than its fixed part, not a multiple of 8 or longer than
what is left is ``OFPGMFC_BAD_BUCKET`` (the error the specification has for a bucket it cannot
use; OVS answers the same); its actions fail with :mod:`.actions`' errors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .actions import Action, decode_actions, encode_actions
from .ofp_const import OFPG_ANY, ErrorType, GroupModFailedCode, PortNo
from .wire import ErrorCode, Reader

BUCKET = struct.Struct("!HHII4x")
BAD_BUCKET: ErrorCode = (ErrorType.GROUP_MOD_FAILED, GroupModFailedCode.BAD_BUCKET)


@dataclass(frozen=True, slots=True)
class Bucket:
    """``weight`` matters to select groups, ``watch_port``/``watch_group`` to fast-failover
    ones (``OFPP_ANY``/``OFPG_ANY``: none)."""

    actions: tuple[Action, ...] = ()
    weight: int = 0
    watch_port: int = PortNo.ANY
    watch_group: int = OFPG_ANY

    def encode(self) -> bytes:
        body = encode_actions(self.actions)
        return BUCKET.pack(BUCKET.size + len(body), self.weight, self.watch_port,
                           self.watch_group) + body

    @classmethod
    def decode(cls, r: Reader) -> Bucket:
        length = r.peek_u16()
        if length < BUCKET.size or length % 8 or length > r.remaining:
            r.fail(f"bucket of length {length}, {r.remaining} bytes left", BAD_BUCKET)
        w = r.window(length)
        _, weight, watch_port, watch_group = w.unpack(BUCKET)
        return cls(decode_actions(w), weight, watch_port, watch_group)


def decode_buckets(r: Reader) -> tuple[Bucket, ...]:
    """Every bucket left in ``r``."""
    w = r.window(r.remaining, BAD_BUCKET, "buckets")
    buckets = []
    while w.remaining:
        buckets.append(Bucket.decode(w))
    return tuple(buckets)


def encode_buckets(buckets: tuple[Bucket, ...] | list[Bucket]) -> bytes:
    return b"".join(b.encode() for b in buckets)
