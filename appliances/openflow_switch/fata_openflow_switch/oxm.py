"""OXM, OpenFlow's TLV match fields (specification 1.3.5, 7.2.3), and ``ofp_match``.

A match is kept as the controller sent it: the TLVs in their order, each value and mask as
the bytes on the wire, so a flow-stats reply can echo the installed match byte for byte
(controllers such as os-ken's switch tester compare it with what they sent).  Decoding
checks only the structure (lengths, the match type); :func:`check_match` is what a switch
asks before installing a flow, and answers with the error the specification names for the
first field at fault: an unknown field (``OFPBMC_BAD_FIELD``), a repeated one
(``OFPBMC_DUP_FIELD``), a mask on a field that has none (``OFPBMC_BAD_MASK``), value bits
beyond the field's width (``OFPBMC_BAD_VALUE``), value bits where the mask is 0
(``OFPBMC_BAD_WILDCARDS``), a prerequisite not met (``OFPBMC_BAD_PREREQ``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .ofp_const import OFPVID_PRESENT, BadMatchCode, ErrorType, MatchType, OxmClass, OxmField
from .wire import ErrorCode, Reader, zeros_to_8

OXM_HEADER = struct.Struct("!I")
MATCH_HEADER = struct.Struct("!HH")

BAD_MATCH_LEN: ErrorCode = (ErrorType.BAD_MATCH, BadMatchCode.BAD_LEN)

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
ETH_MPLS = 0x8847
ETH_MPLS_MCAST = 0x8848
ETH_PBB = 0x88E7
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
ND_SOLICIT = 135
ND_ADVERT = 136


@dataclass(frozen=True, slots=True)
class Prereq:
    """A prerequisite of Table 12: ``field`` in the match and, when ``values`` is given,
    matched exactly with one of them; when ``bits`` is given, those bits set in its value and
    (if it is masked) in its mask: VLAN_PCP's ``VLAN_VID != NONE`` is ``OFPVID_PRESENT``."""

    field: OxmField
    values: tuple[int, ...] = ()
    bits: int = 0


_IP = Prereq(OxmField.ETH_TYPE, (ETH_IPV4, ETH_IPV6))
_IPV4 = Prereq(OxmField.ETH_TYPE, (ETH_IPV4,))
_IPV6 = Prereq(OxmField.ETH_TYPE, (ETH_IPV6,))
_ARP = Prereq(OxmField.ETH_TYPE, (ETH_ARP,))
_MPLS = Prereq(OxmField.ETH_TYPE, (ETH_MPLS, ETH_MPLS_MCAST))


def _proto(number: int) -> Prereq:
    return Prereq(OxmField.IP_PROTO, (number,))


def _icmpv6(*types: int) -> Prereq:
    return Prereq(OxmField.ICMPV6_TYPE, types)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One ``OPENFLOW_BASIC`` field of Table 12: its wire size in bytes, the bits of it that
    carry a value (VLAN_VID's 13: 12 of VID and ``OFPVID_PRESENT``), whether it may be
    masked, and its prerequisite (which chains: TCP_SRC needs IP_PROTO=6, which needs
    ETH_TYPE IPv4 or IPv6)."""

    field: OxmField
    name: str
    size: int
    bits: int
    maskable: bool
    prereq: Prereq | None = None

    @property
    def value_limit(self) -> int:
        """One more than the largest value (and mask) the field allows."""
        return 1 << self.bits


def _spec(field: OxmField, size: int, bits: int, maskable: bool,
          prereq: Prereq | None = None) -> FieldSpec:
    return FieldSpec(field, field.name.lower(), size, bits, maskable, prereq)


F = OxmField
FIELDS: dict[int, FieldSpec] = {s.field: s for s in (
    _spec(F.IN_PORT, 4, 32, False),
    _spec(F.IN_PHY_PORT, 4, 32, False, Prereq(F.IN_PORT)),
    _spec(F.METADATA, 8, 64, True),
    _spec(F.ETH_DST, 6, 48, True),
    _spec(F.ETH_SRC, 6, 48, True),
    _spec(F.ETH_TYPE, 2, 16, False),
    _spec(F.VLAN_VID, 2, 13, True),
    _spec(F.VLAN_PCP, 1, 3, False, Prereq(F.VLAN_VID, bits=OFPVID_PRESENT)),
    _spec(F.IP_DSCP, 1, 6, False, _IP),
    _spec(F.IP_ECN, 1, 2, False, _IP),
    _spec(F.IP_PROTO, 1, 8, False, _IP),
    _spec(F.IPV4_SRC, 4, 32, True, _IPV4),
    _spec(F.IPV4_DST, 4, 32, True, _IPV4),
    _spec(F.TCP_SRC, 2, 16, False, _proto(IPPROTO_TCP)),
    _spec(F.TCP_DST, 2, 16, False, _proto(IPPROTO_TCP)),
    _spec(F.UDP_SRC, 2, 16, False, _proto(IPPROTO_UDP)),
    _spec(F.UDP_DST, 2, 16, False, _proto(IPPROTO_UDP)),
    _spec(F.SCTP_SRC, 2, 16, False, _proto(IPPROTO_SCTP)),
    _spec(F.SCTP_DST, 2, 16, False, _proto(IPPROTO_SCTP)),
    _spec(F.ICMPV4_TYPE, 1, 8, False, _proto(IPPROTO_ICMP)),
    _spec(F.ICMPV4_CODE, 1, 8, False, _proto(IPPROTO_ICMP)),
    _spec(F.ARP_OP, 2, 16, False, _ARP),
    _spec(F.ARP_SPA, 4, 32, True, _ARP),
    _spec(F.ARP_TPA, 4, 32, True, _ARP),
    _spec(F.ARP_SHA, 6, 48, True, _ARP),
    _spec(F.ARP_THA, 6, 48, True, _ARP),
    _spec(F.IPV6_SRC, 16, 128, True, _IPV6),
    _spec(F.IPV6_DST, 16, 128, True, _IPV6),
    _spec(F.IPV6_FLABEL, 4, 20, True, _IPV6),
    _spec(F.ICMPV6_TYPE, 1, 8, False, _proto(IPPROTO_ICMPV6)),
    _spec(F.ICMPV6_CODE, 1, 8, False, _proto(IPPROTO_ICMPV6)),
    _spec(F.IPV6_ND_TARGET, 16, 128, False, _icmpv6(ND_SOLICIT, ND_ADVERT)),
    _spec(F.IPV6_ND_SLL, 6, 48, False, _icmpv6(ND_SOLICIT)),
    _spec(F.IPV6_ND_TLL, 6, 48, False, _icmpv6(ND_ADVERT)),
    _spec(F.MPLS_LABEL, 4, 20, False, _MPLS),
    _spec(F.MPLS_TC, 1, 3, False, _MPLS),
    _spec(F.MPLS_BOS, 1, 1, False, _MPLS),
    _spec(F.PBB_ISID, 3, 24, True, Prereq(F.ETH_TYPE, (ETH_PBB,))),
    _spec(F.TUNNEL_ID, 8, 64, True),
    _spec(F.IPV6_EXTHDR, 2, 9, True, _IPV6),
)}
"""Every field of the ``OPENFLOW_BASIC`` class, by number."""

FIELDS_BY_NAME: dict[str, FieldSpec] = {s.name: s for s in FIELDS.values()}


@dataclass(frozen=True, slots=True)
class OxmTlv:
    """One TLV as sent: ``value`` and ``mask`` are the wire's bytes (``mask`` None when
    ``oxm_hasmask`` is 0).  ``experimenter`` is the experimenter ID that follows the header
    of a TLV of the ``EXPERIMENTER`` class (None for the others)."""

    field: int
    value: bytes
    mask: bytes | None = None
    oxm_class: int = OxmClass.OPENFLOW_BASIC
    experimenter: int | None = None

    @property
    def payload_len(self) -> int:
        """``oxm_length``: the bytes after the 4-byte header."""
        n = len(self.value) + (0 if self.mask is None else len(self.mask))
        return n + (0 if self.experimenter is None else 4)

    @property
    def header(self) -> int:
        """The 32-bit OXM header: class, field, hasmask, length."""
        return oxm_header(self.oxm_class, self.field, self.mask is not None, self.payload_len)

    @property
    def spec(self) -> FieldSpec | None:
        """The field's Table 12 entry, None outside the basic class or for an unknown field."""
        return FIELDS.get(self.field) if self.oxm_class == OxmClass.OPENFLOW_BASIC else None

    @property
    def int_value(self) -> int:
        return int.from_bytes(self.value, "big")

    @property
    def int_mask(self) -> int | None:
        return None if self.mask is None else int.from_bytes(self.mask, "big")

    def encode(self) -> bytes:
        """The TLV; one the header cannot describe is refused (``ValueError``)."""
        if (self.oxm_class == OxmClass.EXPERIMENTER) != (self.experimenter is not None):
            raise ValueError("an experimenter ID goes with the EXPERIMENTER class and only with it")
        if self.mask is not None and len(self.mask) != len(self.value):
            raise ValueError(f"mask of {len(self.mask)} bytes for a value of {len(self.value)}")
        if self.payload_len > 0xFF:
            raise ValueError(f"OXM payload of {self.payload_len} bytes (at most 255)")
        exp = b"" if self.experimenter is None else struct.pack("!I", self.experimenter)
        return OXM_HEADER.pack(self.header) + exp + self.value + (self.mask or b"")

    def __str__(self) -> str:
        spec = self.spec
        name = spec.name if spec else f"oxm({self.oxm_class:#x},{self.field})"
        mask = f"/{self.mask.hex()}" if self.mask is not None else ""
        return f"{name}={self.value.hex()}{mask}"


def oxm_header(oxm_class: int, field: int, hasmask: bool, length: int) -> int:
    """The 32-bit OXM header (``OXM_HEADER__`` of ``openflow.h``)."""
    return (oxm_class << 16) | (field << 9) | (int(hasmask) << 8) | length


def oxm(name: str | int, value: int | bytes, mask: int | bytes | None = None) -> OxmTlv:
    """A basic-class TLV by field name or number, integers written at the field's size:
    ``oxm("ipv4_src", 0x0A000001, 0xFFFFFF00)``."""
    spec = FIELDS_BY_NAME[name] if isinstance(name, str) else FIELDS[name]

    def raw(v: int | bytes) -> bytes:
        return v.to_bytes(spec.size, "big") if isinstance(v, int) else bytes(v)

    return OxmTlv(spec.field, raw(value), None if mask is None else raw(mask))


def decode_tlv(r: Reader) -> OxmTlv:
    """One TLV from ``r``; a length that does not fit, or does not fit the field, is
    ``r``'s length error (``OFPBMC_BAD_LEN`` in a match, ``OFPBAC_BAD_SET_LEN`` in a
    set-field action)."""
    (header,) = r.unpack(OXM_HEADER, "OXM header")
    oxm_class, field = header >> 16, (header >> 9) & 0x7F
    hasmask, length = bool(header & 0x100), header & 0xFF
    body = r.window(length, what="OXM payload")
    experimenter = None
    if oxm_class == OxmClass.EXPERIMENTER:
        experimenter = body.u32()
    rest = body.rest()
    if hasmask and len(rest) % 2:
        r.fail(f"masked OXM with an odd payload of {len(rest)} bytes")
    if oxm_class == OxmClass.OPENFLOW_BASIC:
        spec = FIELDS.get(field)
        if spec is not None and len(rest) != spec.size * (2 if hasmask else 1):
            r.fail(f"{spec.name} of {length} bytes (it is {spec.size}{' masked' if hasmask else ''})")
    if hasmask:
        half = len(rest) // 2
        return OxmTlv(field, rest[:half], rest[half:], oxm_class, experimenter)
    return OxmTlv(field, rest, None, oxm_class, experimenter)


@dataclass(frozen=True, slots=True)
class Match:
    """``ofp_match`` of type ``OFPMT_OXM``: the TLVs in the order they were sent."""

    fields: tuple[OxmTlv, ...] = ()

    def __iter__(self) -> Iterator[OxmTlv]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def get(self, field: int) -> OxmTlv | None:
        """The basic-class TLV for ``field``, or None."""
        for tlv in self.fields:
            if tlv.field == field and tlv.oxm_class == OxmClass.OPENFLOW_BASIC:
                return tlv
        return None

    def encode(self) -> bytes:
        """The match with its padding to 8 bytes (``length`` excludes the padding)."""
        body = b"".join(tlv.encode() for tlv in self.fields)
        length = MATCH_HEADER.size + len(body)
        return MATCH_HEADER.pack(MatchType.OXM, length) + body + zeros_to_8(length)

    @classmethod
    def decode(cls, r: Reader) -> Match:
        """A match and its padding from ``r``: a type other than ``OFPMT_OXM`` is
        ``OFPBMC_BAD_TYPE``, any length problem ``OFPBMC_BAD_LEN``."""
        start = r.window(MATCH_HEADER.size, BAD_MATCH_LEN, "match header")
        match_type, length = start.unpack(MATCH_HEADER)
        if match_type != MatchType.OXM:
            r.fail(f"match type {match_type}", (ErrorType.BAD_MATCH, BadMatchCode.BAD_TYPE))
        if length < MATCH_HEADER.size:
            r.fail(f"match length {length}", BAD_MATCH_LEN)
        body = r.window(length - MATCH_HEADER.size, BAD_MATCH_LEN, "match")
        r.window(-length % 8, BAD_MATCH_LEN, "match padding")
        tlvs = []
        while body.remaining:
            tlvs.append(decode_tlv(body))
        return cls(tuple(tlvs))

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.fields) or "any"


MATCH_ANY = Match()
"""The empty match (every packet); the default of the messages that carry a match."""


def _bad(code: BadMatchCode) -> ErrorCode:
    return (ErrorType.BAD_MATCH, code)


def _prereq_met(prereq: Prereq, seen: dict[int, OxmTlv]) -> bool:
    tlv = seen.get(prereq.field)
    if tlv is None:
        return False
    value, mask = tlv.int_value, tlv.int_mask
    if prereq.values and (mask is not None or value not in prereq.values):
        return False
    bits = prereq.bits
    return value & bits == bits and (mask is None or mask & bits == bits)


def check_tlv(tlv: OxmTlv) -> ErrorCode | None:
    """What is wrong with one TLV on its own (field, mask, value), or None."""
    spec = tlv.spec
    if spec is None:
        return _bad(BadMatchCode.BAD_FIELD)
    mask = tlv.int_mask
    if mask is not None and not spec.maskable:
        return _bad(BadMatchCode.BAD_MASK)
    if tlv.int_value >= spec.value_limit:
        return _bad(BadMatchCode.BAD_VALUE)
    if mask is not None:
        if mask >= spec.value_limit:
            return _bad(BadMatchCode.BAD_MASK)
        if tlv.int_value & ~mask:
            return _bad(BadMatchCode.BAD_WILDCARDS)
    return None


def check_match(fields: Match | Sequence[OxmTlv]) -> ErrorCode | None:
    """The ``OFPET_BAD_MATCH`` error for the first TLV at fault, or None for a match a switch
    supporting every basic field can install.  Prerequisites are looked for anywhere in the
    match, not only before the field (the relaxation the specification allows a switch), so a
    controller that orders its TLVs differently is not refused."""
    tlvs = list(fields)
    seen: dict[int, OxmTlv] = {}
    for tlv in tlvs:
        err = check_tlv(tlv)
        if err is not None:
            return err
        if tlv.field in seen:
            return _bad(BadMatchCode.DUP_FIELD)
        seen[tlv.field] = tlv
    for tlv in tlvs:  # each field's own prerequisite: a chain is checked link by link
        prereq = FIELDS[tlv.field].prereq
        if prereq is not None and not _prereq_met(prereq, seen):
            return _bad(BadMatchCode.BAD_PREREQ)
    return None
