"""Queue descriptions (``ofp_packet_queue`` and its properties, specification 1.3.5, 7.2.2),
as the queue-get-config reply carries them.

A queue or property whose length is short or past what is left is ``OFPBRC_BAD_LEN``; a
property type the specification does not define is kept (type and bytes), since a reply is
only ever read, never acted on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .ofp_const import QueueProperty
from .wire import BAD_REQUEST_LEN, Reader

PACKET_QUEUE = struct.Struct("!IIH6x")
PROP_HEADER = struct.Struct("!HH4x")
_RATE = struct.Struct("!HH4xH6x")
_EXPERIMENTER = struct.Struct("!HH4xI4x")


@dataclass(frozen=True, slots=True)
class QueueProp:
    """One property, ``prop`` its type: ``MIN_RATE``/``MAX_RATE`` carry ``rate`` (1/10 of a percent, 0xffff
    unconfigured); ``EXPERIMENTER`` carries ``experimenter`` and ``data``; another type
    only ``data`` (its bytes after the 8-byte header)."""

    prop: int
    rate: int = 0
    experimenter: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        if self.prop in (QueueProperty.MIN_RATE, QueueProperty.MAX_RATE):
            return _RATE.pack(self.prop, _RATE.size, self.rate)
        if self.prop == QueueProperty.EXPERIMENTER:
            return _EXPERIMENTER.pack(self.prop, _EXPERIMENTER.size + len(self.data),
                                      self.experimenter) + self.data
        return PROP_HEADER.pack(self.prop, PROP_HEADER.size + len(self.data)) + self.data

    @classmethod
    def decode(cls, r: Reader) -> QueueProp:
        prop, length = r.peek_u16(), r.peek_u16(2)
        if length < PROP_HEADER.size or length > r.remaining:
            r.fail(f"queue property of length {length}, {r.remaining} bytes left")
        w = r.window(length)
        if prop in (QueueProperty.MIN_RATE, QueueProperty.MAX_RATE):
            rate = w.unpack(_RATE, "queue rate property")[2]
            w.end("queue rate property")
            return cls(prop, rate=rate)
        if prop == QueueProperty.EXPERIMENTER:
            experimenter = w.unpack(_EXPERIMENTER, "queue experimenter property")[2]
            return cls(prop, experimenter=experimenter, data=w.rest())
        w.skip(PROP_HEADER.size)
        return cls(prop, data=w.rest())


@dataclass(frozen=True, slots=True)
class PacketQueue:
    queue_id: int
    port: int
    properties: tuple[QueueProp, ...] = ()

    def encode(self) -> bytes:
        body = b"".join(p.encode() for p in self.properties)
        return PACKET_QUEUE.pack(self.queue_id, self.port, PACKET_QUEUE.size + len(body)) + body

    @classmethod
    def decode(cls, r: Reader) -> PacketQueue:
        if r.remaining < PACKET_QUEUE.size:
            r.fail(f"queue of {r.remaining} bytes")
        length = r.peek_u16(8)
        if length < PACKET_QUEUE.size or length > r.remaining:
            r.fail(f"queue of length {length}, {r.remaining} bytes left")
        w = r.window(length, BAD_REQUEST_LEN)
        queue_id, port, _ = w.unpack(PACKET_QUEUE)
        props = []
        while w.remaining:
            props.append(QueueProp.decode(w))
        return cls(queue_id, port, tuple(props))
