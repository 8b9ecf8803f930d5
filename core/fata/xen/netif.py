"""The network device's ring entries (``xen/io/netif.h``): what netfront and netback put in
the slots of their two :mod:`fata.xen.ring` rings, as struct codecs.

Two rings per queue: on the *tx* ring the front (the guest sending) puts
:class:`TxRequest` s, one per fragment of a packet (``NETTXF_more_data`` links them,
``NETTXF_extra_info`` says an :class:`ExtraInfo` slot follows), and the back answers every
slot with a :class:`TxResponse` (``NETIF_RSP_NULL`` for extra-info slots).  On the *rx*
ring the front posts empty buffers as :class:`RxRequest` s and the back answers each with
an :class:`RxResponse` in the same slot (Linux netfront relies on that, since extra-info
slots overlay the id), ``status`` the received length or a negative ``NETIF_RSP_*``.

Layouts are little-endian x86-64, checked against gcc on the real header
(``tests/xen/test_ring.py``): a tx slot is 12 bytes (the request; a response uses its first
4), an rx slot 8, so one 4 KiB page holds 256 of either.  Codecs read and write a
``memoryview`` at an offset, normally :attr:`fata.xen.ring.FrontRing.entries` at
``ring.offset(index)``, so nothing is copied but the fields.  Reserved padding is written as
zero and ignored when read.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from fata.xen.ring import PAGE, ring_size

# -- constants (names as in netif.h) -----------------------------------------------------

XEN_NETIF_NR_SLOTS_MIN = 18  # slots of one packet every backend must accept
XEN_NETIF_MAX_TX_SIZE = 0xFFFF

NETTXF_csum_blank = 1 << 0  # protocol checksum field is blank (the back completes it)
NETTXF_data_validated = 1 << 1  # the data was checked against its protocol checksum
NETTXF_more_data = 1 << 2  # the packet continues in the next request
NETTXF_extra_info = 1 << 3  # an extra-info slot follows

NETRXF_data_validated = 1 << 0
NETRXF_csum_blank = 1 << 1
NETRXF_more_data = 1 << 2
NETRXF_extra_info = 1 << 3
NETRXF_gso_prefix = 1 << 4  # deprecated, kept for compatibility

XEN_NETIF_EXTRA_TYPE_NONE = 0  # never used: invalid
XEN_NETIF_EXTRA_TYPE_GSO = 1
XEN_NETIF_EXTRA_TYPE_MCAST_ADD = 2
XEN_NETIF_EXTRA_TYPE_MCAST_DEL = 3
XEN_NETIF_EXTRA_TYPE_HASH = 4
XEN_NETIF_EXTRA_TYPE_MAX = 5
XEN_NETIF_EXTRA_FLAG_MORE = 1 << 0  # another extra-info slot follows

XEN_NETIF_GSO_TYPE_NONE = 0
XEN_NETIF_GSO_TYPE_TCPV4 = 1
XEN_NETIF_GSO_TYPE_TCPV6 = 2

# Response status codes.  Xen's header spells them NETIF_RSP_*, Linux's copy of it
# XEN_NETIF_RSP_*; both names are the same numbers.
NETIF_RSP_DROPPED = XEN_NETIF_RSP_DROPPED = -2
NETIF_RSP_ERROR = XEN_NETIF_RSP_ERROR = -1
NETIF_RSP_OKAY = XEN_NETIF_RSP_OKAY = 0
NETIF_RSP_NULL = XEN_NETIF_RSP_NULL = 1  # no response: the slot held an extra-info

# -- layouts -----------------------------------------------------------------------------

TX_REQUEST = struct.Struct("<IHHHH")  # gref offset flags id size
TX_RESPONSE = struct.Struct("<Hh")  # id status
RX_REQUEST = struct.Struct("<H2xI")  # id (pad) gref
RX_RESPONSE = struct.Struct("<HHHh")  # id offset flags status
EXTRA_INFO = struct.Struct("<BB6s")  # type flags, then 6 bytes of the union
EXTRA_GSO = struct.Struct("<BBHBxH")  # type flags size gso_type (pad) features
EXTRA_MCAST = struct.Struct("<BB6s")  # type flags addr
EXTRA_HASH = struct.Struct("<BBBBI")  # type flags hash_type algorithm value

TX_ENTRY_SIZE = max(TX_REQUEST.size, TX_RESPONSE.size)  # 12: union netif_tx_sring_entry
RX_ENTRY_SIZE = max(RX_REQUEST.size, RX_RESPONSE.size)  # 8: union netif_rx_sring_entry
NET_TX_RING_SIZE = ring_size(PAGE, TX_ENTRY_SIZE)  # 256
NET_RX_RING_SIZE = ring_size(PAGE, RX_ENTRY_SIZE)  # 256


class TxRequest(NamedTuple):
    """``netif_tx_request``: one fragment the front sends, in the granted page ``gref`` at
    ``offset``; ``size`` is the whole packet's in the first fragment, else the fragment's."""

    gref: int
    offset: int
    flags: int
    id: int
    size: int


class TxResponse(NamedTuple):
    """``netif_tx_response``: the back is done with request ``id``."""

    id: int
    status: int


class RxRequest(NamedTuple):
    """``netif_rx_request``: an empty page (``gref``) the back may fill, echoing ``id``."""

    id: int
    gref: int


class RxResponse(NamedTuple):
    """``netif_rx_response``: request ``id``'s page now holds ``status`` bytes at
    ``offset`` (or ``status`` is a negative ``NETIF_RSP_*``)."""

    id: int
    offset: int
    flags: int
    status: int


class ExtraInfo(NamedTuple):
    """``netif_extra_info`` in its generic form: ``type`` (``XEN_NETIF_EXTRA_TYPE_*``),
    ``flags`` (``XEN_NETIF_EXTRA_FLAG_*``) and the 6 bytes of the type's union member."""

    type: int
    flags: int
    data: bytes


class GsoInfo(NamedTuple):
    """The GSO extra: cut the packet into ``size``-byte segments (the MSS) of protocol
    ``gso_type`` (``XEN_NETIF_GSO_TYPE_*``)."""

    size: int
    gso_type: int
    features: int = 0
    flags: int = 0


class McastInfo(NamedTuple):
    """A multicast extra: add or remove (``XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL``) ``addr``."""

    type: int
    addr: bytes
    flags: int = 0


class HashInfo(NamedTuple):
    """The hash extra: the packet's ``value`` under ``algorithm`` over ``hash_type``."""

    hash_type: int
    algorithm: int
    value: int
    flags: int = 0


# -- codecs ------------------------------------------------------------------------------

def pack_tx_request(buf: memoryview | bytearray, offset: int, req: TxRequest) -> None:
    TX_REQUEST.pack_into(buf, offset, *req)


def unpack_tx_request(buf: memoryview | bytes | bytearray, offset: int = 0) -> TxRequest:
    return TxRequest._make(TX_REQUEST.unpack_from(buf, offset))


def pack_tx_response(buf: memoryview | bytearray, offset: int, rsp: TxResponse) -> None:
    TX_RESPONSE.pack_into(buf, offset, *rsp)


def unpack_tx_response(buf: memoryview | bytes | bytearray, offset: int = 0) -> TxResponse:
    return TxResponse._make(TX_RESPONSE.unpack_from(buf, offset))


def pack_rx_request(buf: memoryview | bytearray, offset: int, req: RxRequest) -> None:
    RX_REQUEST.pack_into(buf, offset, *req)


def unpack_rx_request(buf: memoryview | bytes | bytearray, offset: int = 0) -> RxRequest:
    return RxRequest._make(RX_REQUEST.unpack_from(buf, offset))


def pack_rx_response(buf: memoryview | bytearray, offset: int, rsp: RxResponse) -> None:
    RX_RESPONSE.pack_into(buf, offset, *rsp)


def unpack_rx_response(buf: memoryview | bytes | bytearray, offset: int = 0) -> RxResponse:
    return RxResponse._make(RX_RESPONSE.unpack_from(buf, offset))


def pack_extra_info(buf: memoryview | bytearray, offset: int, extra: ExtraInfo) -> None:
    if len(extra.data) != 6:
        raise ValueError("an extra-info's type-specific part is 6 bytes")
    EXTRA_INFO.pack_into(buf, offset, *extra)


def unpack_extra_info(buf: memoryview | bytes | bytearray, offset: int = 0) -> ExtraInfo:
    """Any extra-info slot; dispatch on ``type`` and decode with the specific codec."""
    return ExtraInfo._make(EXTRA_INFO.unpack_from(buf, offset))


def pack_gso(buf: memoryview | bytearray, offset: int, gso: GsoInfo) -> None:
    EXTRA_GSO.pack_into(buf, offset, XEN_NETIF_EXTRA_TYPE_GSO, gso.flags, gso.size,
                        gso.gso_type, gso.features)


def unpack_gso(buf: memoryview | bytes | bytearray, offset: int = 0) -> GsoInfo:
    type_, flags, size, gso_type, features = EXTRA_GSO.unpack_from(buf, offset)
    if type_ != XEN_NETIF_EXTRA_TYPE_GSO:
        raise ValueError(f"extra-info type {type_} is not GSO")
    return GsoInfo(size, gso_type, features, flags)


def pack_mcast(buf: memoryview | bytearray, offset: int, mcast: McastInfo) -> None:
    if mcast.type not in (XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL):
        raise ValueError(f"extra-info type {mcast.type} is not a multicast one")
    if len(mcast.addr) != 6:
        raise ValueError("a multicast address is 6 bytes")
    EXTRA_MCAST.pack_into(buf, offset, mcast.type, mcast.flags, mcast.addr)


def unpack_mcast(buf: memoryview | bytes | bytearray, offset: int = 0) -> McastInfo:
    type_, flags, addr = EXTRA_MCAST.unpack_from(buf, offset)
    if type_ not in (XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL):
        raise ValueError(f"extra-info type {type_} is not a multicast one")
    return McastInfo(type_, addr, flags)


def pack_hash(buf: memoryview | bytearray, offset: int, info: HashInfo) -> None:
    EXTRA_HASH.pack_into(buf, offset, XEN_NETIF_EXTRA_TYPE_HASH, info.flags, info.hash_type,
                         info.algorithm, info.value)


def unpack_hash(buf: memoryview | bytes | bytearray, offset: int = 0) -> HashInfo:
    type_, flags, hash_type, algorithm, value = EXTRA_HASH.unpack_from(buf, offset)
    if type_ != XEN_NETIF_EXTRA_TYPE_HASH:
        raise ValueError(f"extra-info type {type_} is not a hash")
    return HashInfo(hash_type, algorithm, value, flags)
