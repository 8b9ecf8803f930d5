"""OpenFlow 1.0 (wire version 0x01, specification 1.0.0): the messages a learning-switch
controller exchanges with a switch, for switches (and benchmark generators such as cbench)
that speak nothing newer.

Only what the controller role needs, each exact to the specification's layout: the header
and the message types that are numbered as in 1.3 (HELLO, ERROR, ECHO, FEATURES, SET_CONFIG,
PACKET_IN, PACKET_OUT, FLOW_MOD; BARRIER is 18/19 here), ``ofp_phy_port`` in a
FEATURES_REPLY, ``ofp_packet_in`` read, ``ofp_match`` with its wildcard bits,
``ofp_flow_mod`` and ``ofp_packet_out`` with output actions written.  Bytes in, values out:
nothing here touches a socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OFP10_VERSION = 0x01
HEADER = struct.Struct("!BBHI")

# ofp_type values that differ from 1.3's
OFPT10_BARRIER_REQUEST = 18
OFPT10_BARRIER_REPLY = 19

# ofp_port: reserved port numbers (16 bits in 1.0)
OFPP10_MAX = 0xFF00
OFPP10_IN_PORT = 0xFFF8
OFPP10_FLOOD = 0xFFFB
OFPP10_ALL = 0xFFFC
OFPP10_CONTROLLER = 0xFFFD
OFPP10_NONE = 0xFFFF

# ofp_flow_wildcards
OFPFW_IN_PORT = 1 << 0
OFPFW_DL_VLAN = 1 << 1
OFPFW_DL_SRC = 1 << 2
OFPFW_DL_DST = 1 << 3
OFPFW_DL_TYPE = 1 << 4
OFPFW_NW_PROTO = 1 << 5
OFPFW_TP_SRC = 1 << 6
OFPFW_TP_DST = 1 << 7
OFPFW_NW_SRC_ALL = 32 << 8
OFPFW_NW_DST_ALL = 32 << 14
OFPFW_DL_VLAN_PCP = 1 << 20
OFPFW_NW_TOS = 1 << 21
OFPFW_ALL = (1 << 22) - 1

OFPFC_ADD = 0
OFPFF_SEND_FLOW_REM = 1
OFPAT10_OUTPUT = 0

_FEATURES = struct.Struct("!QIB3xII")
_PHY_PORT = struct.Struct("!H6s16sIIIIII")
_PACKET_IN = struct.Struct("!IHHBx")
# wildcards, in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp, pad, dl_type, nw_tos, nw_proto,
# pad, nw_src, nw_dst, tp_src, tp_dst
MATCH = struct.Struct("!IH6s6sHBxHBB2xIIHH")
_FLOW_MOD = struct.Struct("!QHHHHIHH")  # after the match
_PACKET_OUT = struct.Struct("!IHH")
_OUTPUT = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class PhyPort:
    """``ofp_phy_port``: a port a 1.0 switch reports."""

    port_no: int
    hw_addr: bytes
    name: str


@dataclass(frozen=True, slots=True)
class FeaturesReply10:
    datapath_id: int
    n_buffers: int
    n_tables: int
    capabilities: int
    actions: int
    ports: tuple[PhyPort, ...]


def decode_features_reply(data: bytes) -> FeaturesReply10:
    """``OFPT_FEATURES_REPLY`` (whole message); ``ValueError`` when it is cut short."""
    if len(data) < HEADER.size + _FEATURES.size:
        raise ValueError("features-reply shorter than 32 bytes")
    dpid, n_buffers, n_tables, caps, actions = _FEATURES.unpack_from(data, HEADER.size)
    ports = []
    for at in range(HEADER.size + _FEATURES.size, len(data) - _PHY_PORT.size + 1, _PHY_PORT.size):
        port_no, hw_addr, name, *_ = _PHY_PORT.unpack_from(data, at)
        ports.append(PhyPort(port_no, hw_addr, name.split(b"\0", 1)[0].decode("ascii", "replace")))
    return FeaturesReply10(dpid, n_buffers, n_tables, caps, actions, tuple(ports))


@dataclass(frozen=True, slots=True)
class PacketIn10:
    buffer_id: int
    total_len: int
    in_port: int
    reason: int
    data: bytes


def decode_packet_in(data: bytes) -> PacketIn10:
    """``OFPT_PACKET_IN`` (whole message); ``ValueError`` when it is cut short."""
    if len(data) < HEADER.size + _PACKET_IN.size:
        raise ValueError("packet-in shorter than 18 bytes")
    buffer_id, total_len, in_port, reason = _PACKET_IN.unpack_from(data, HEADER.size)
    return PacketIn10(buffer_id, total_len, in_port, reason, data[HEADER.size + _PACKET_IN.size:])


def packet_in(xid: int, buffer_id: int, in_port: int, frame: bytes, reason: int = 0) -> bytes:
    """An ``OFPT_PACKET_IN`` carrying ``frame`` (what a switch, or a benchmark, sends)."""
    body = _PACKET_IN.pack(buffer_id, len(frame), in_port, reason) + frame
    return HEADER.pack(OFP10_VERSION, 10, HEADER.size + len(body), xid) + body


def match_in_port_dl_dst(in_port: int, dl_dst: bytes) -> bytes:
    """An ``ofp_match`` on the in-port and destination MAC, everything else wild."""
    wildcards = OFPFW_ALL & ~(OFPFW_IN_PORT | OFPFW_DL_DST)
    return MATCH.pack(wildcards, in_port, bytes(6), dl_dst, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def output(port: int, max_len: int = 0) -> bytes:
    """``ofp_action_output``."""
    return _OUTPUT.pack(OFPAT10_OUTPUT, _OUTPUT.size, port, max_len)


def flow_mod(xid: int, match: bytes, actions: bytes, *, priority: int = 0x8000,
             buffer_id: int = 0xFFFFFFFF, idle_timeout: int = 0, hard_timeout: int = 0,
             cookie: int = 0, flags: int = 0) -> bytes:
    """An ``OFPT_FLOW_MOD`` adding a flow (``OFPFC_ADD``); ``buffer_id`` names a packet the
    switch holds, to which the new flow is applied."""
    body = match + _FLOW_MOD.pack(cookie, OFPFC_ADD, idle_timeout, hard_timeout, priority,
                                  buffer_id, OFPP10_NONE, flags) + actions
    return HEADER.pack(OFP10_VERSION, 14, HEADER.size + len(body), xid) + body


def packet_out(xid: int, in_port: int, actions: bytes, *, buffer_id: int = 0xFFFFFFFF,
               data: bytes = b"") -> bytes:
    """An ``OFPT_PACKET_OUT``: the buffered packet ``buffer_id``, or ``data`` when unbuffered."""
    body = _PACKET_OUT.pack(buffer_id, in_port, len(actions)) + actions + data
    return HEADER.pack(OFP10_VERSION, 13, HEADER.size + len(body), xid) + body


def features_reply(xid: int, datapath_id: int, ports: list[PhyPort], *, n_buffers: int = 256,
                   n_tables: int = 1) -> bytes:
    """An ``OFPT_FEATURES_REPLY`` (what a benchmark's fake switch answers)."""
    body = _FEATURES.pack(datapath_id, n_buffers, n_tables, 0, 1 << OFPAT10_OUTPUT)
    for port in ports:
        body += _PHY_PORT.pack(port.port_no, port.hw_addr, port.name.encode("ascii"),
                               0, 0, 0, 0, 0, 0)
    return HEADER.pack(OFP10_VERSION, 6, HEADER.size + len(body), xid) + body
