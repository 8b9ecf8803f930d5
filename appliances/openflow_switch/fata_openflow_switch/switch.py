"""The switch as a sans-IO engine: controller messages in, messages and frames out.

``Switch.handle(msg, now)`` takes one message as :func:`.messages.decode_message` returned
it (a :class:`~.messages.Malformed` is answered with its error) and ``Switch.process(in_port,
frames, now)`` a batch of frames received on a port; both return an :class:`Emitted`: frames
per output port and messages for the controller (replies, errors, PACKET_IN, FLOW_REMOVED).
``next_deadline()``/``on_timer(now)`` drive flow timeouts.  Nothing here reads a clock or
touches a socket, so every test runs on a virtual clock.

The pipeline is 5.1's: table 0 first, each entry's instructions in 5.9's order (apply-actions
now, clear-actions, write-actions into the action set, write-metadata, goto-table onwards
only), and the action set executed in 5.10's order when no goto is left.  Every request that
cannot be honoured is refused with the specification's error (7.4.4) and nothing changed;
what this switch does not implement (groups, meters, queues, MPLS and PBB actions, roles,
asynchronous configuration) is refused the same way, never silently ignored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import actions as A
from . import instructions as I
from . import messages as M
from . import multipart as MP
from .flow_table import FlowEntry, FlowTables, Selection
from .group import GroupTable
from .meter import MAX_BANDS, MeterTable, remark
from .meter_bands import DscpRemarkBand
from .ofp_const import (
    OFP_DEFAULT_MISS_SEND_LEN,
    OFP_NO_BUFFER,
    OFPCML_NO_BUFFER,
    OFPG_ALL,
    OFPM_ALL,
    BadActionCode,
    BadInstructionCode,
    BadRequestCode,
    Capabilities,
    ConfigFlags,
    ErrorType,
    FlowModCommand,
    FlowRemovedReason,
    GroupCapabilities,
    GroupType,
    MeterBandType,
    MeterFlags,
    MeterModFailedCode,
    MultipartFlags,
    OxmField,
    PacketInReason,
    PortConfig,
    PortModFailedCode,
    PortNo,
    PortReason,
    PortState,
    SwitchConfigFailedCode,
    TableModFailedCode,
)
from .oxm import ETH_MPLS, ETH_MPLS_MCAST, ETH_PBB, Match, oxm
from .packet import VLAN_TPIDS, Parsed, parse
from .port_desc import Port
from .rewrite import (
    SETTABLE,
    copy_ttl,
    dec_mpls_ttl,
    dec_nw_ttl,
    pop_mpls,
    pop_pbb,
    pop_vlan,
    push_mpls,
    push_pbb,
    push_vlan,
    set_field,
    set_mpls_ttl,
    set_nw_ttl,
)
from .wire import ErrorCode

_NO_COOKIE = (1 << 64) - 1
"""The cookie of a packet-in that no flow entry sent (a packet-out's)."""
_MAX_REPLY_BODY = 0xFFFF - 16
"""Room for a multipart reply's body in one message; longer replies are split."""

_OUTPUT_RESERVED = frozenset({PortNo.IN_PORT, PortNo.FLOOD, PortNo.ALL, PortNo.CONTROLLER,
                              PortNo.LOCAL})
_IMPLEMENTED_ACTIONS = (A.Output, A.Group, A.SetField, A.PushVlan, A.PopVlan, A.PushMpls, A.PopMpls,
                        A.PushPbb, A.PopPbb, A.SetNwTtl, A.DecNwTtl, A.SetMplsTtl,
                        A.DecMplsTtl, A.CopyTtlOut, A.CopyTtlIn)
_PUSH_TYPES: dict[type, frozenset[int]] = {A.PushVlan: VLAN_TPIDS,
                                           A.PushMpls: frozenset({ETH_MPLS, ETH_MPLS_MCAST}),
                                           A.PushPbb: frozenset({ETH_PBB})}
"""The ethertypes each push action may carry (7.2.5); another is ``OFPBAC_BAD_ARGUMENT``."""
_TUNNEL_ID = OxmField.TUNNEL_ID

_SET_ORDER: dict[type, int] = {A.CopyTtlIn: 0, A.PopVlan: 1, A.PopMpls: 1, A.PopPbb: 1,
                               A.PushMpls: 2, A.PushPbb: 3, A.PushVlan: 4, A.CopyTtlOut: 5,
                               A.DecMplsTtl: 6, A.DecNwTtl: 6, A.SetMplsTtl: 7, A.SetNwTtl: 7,
                               A.SetField: 7, A.SetQueue: 8, A.Group: 9, A.Output: 10}
"""5.10: the order of an action set's execution, by action class."""


def _err(etype: int, code: int) -> ErrorCode:
    return (etype, code)


class SwitchPort:
    """A port: its description's numbers and its counters, bumped in place."""

    __slots__ = ("collisions", "config", "hw_addr", "name", "port_no", "rx_bytes",
                 "rx_dropped", "rx_packets", "speed", "state", "tx_bytes", "tx_dropped",
                 "tx_packets")

    def __init__(self, port_no: int, name: bytes, hw_addr: bytes, speed: int = 10_000_000,
                 config: int = 0, state: int = 0) -> None:
        if not 1 <= port_no <= PortNo.MAX or len(hw_addr) != 6 or len(name) > 16:
            raise ValueError(f"port {port_no} {name!r} {hw_addr.hex()}")
        self.port_no = port_no
        self.name = name
        self.hw_addr = hw_addr
        self.speed = speed
        self.config = config
        self.state = state
        self.rx_packets = self.rx_bytes = self.rx_dropped = 0
        self.tx_packets = self.tx_bytes = self.tx_dropped = 0
        self.collisions = 0

    def desc(self) -> Port:
        return Port(self.port_no, self.hw_addr, self.name, self.config, self.state,
                    curr_speed=self.speed, max_speed=self.speed)

    def stats(self, duration: float) -> MP.PortStats:
        sec = int(max(0.0, duration))
        return MP.PortStats(self.port_no, self.rx_packets, self.tx_packets, self.rx_bytes,
                            self.tx_bytes, self.rx_dropped, self.tx_dropped,
                            duration_sec=sec)

    @property
    def forwards(self) -> bool:
        return not self.config & (PortConfig.PORT_DOWN | PortConfig.NO_FWD)


@dataclass
class Emitted:
    """What a call produced: ``frames`` by output port number (``OFPP_LOCAL`` for the
    switch's own stack), in order, and ``messages`` for the controller."""

    frames: dict[int, list[bytes]] = field(default_factory=dict)
    messages: list[M.Message] = field(default_factory=list)

    def send(self, port: int, frame: bytes) -> None:
        self.frames.setdefault(port, []).append(frame)


Origin = FlowEntry | None
"""Where a packet in the pipeline came from, for its packet-ins: the flow entry whose
actions run (its table and cookie; a table-miss entry's say ``OFPR_NO_MATCH``), or None
for a packet-out's.  The entry itself, so nothing is allocated per packet for it."""


class Switch:
    """An OpenFlow 1.3 switch of ``n_tables`` tables over ``ports``; ``n_buffers`` packets
    may wait in buffers for a packet-out or flow-mod naming them (0: every packet-in
    carries its whole frame).  Frames sent on a port or to the controller shorter than
    ``min_frame`` are padded with zeros to it: 60, Ethernet's minimum without the FCS, is
    what a wire carries after a pop-VLAN or pop-MPLS shortened a frame (0 leaves frames as
    the pipeline made them, for a port whose link pads by itself)."""

    def __init__(self, datapath_id: int, ports: Iterable[SwitchPort], n_tables: int = 8,
                 n_buffers: int = 256, now: float = 0.0,
                 desc: MP.DescReply | None = None, min_frame: int = 60) -> None:
        self.datapath_id = datapath_id
        self.ports: dict[int, SwitchPort] = {p.port_no: p for p in ports}
        self.tables = FlowTables(n_tables)
        self.n_buffers = n_buffers
        self.buffers: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self._next_buffer = 0
        self.config_flags = 0
        self.miss_send_len = OFP_DEFAULT_MISS_SEND_LEN
        self.started = now
        self.desc = desc or MP.DescReply(b"Fata", b"Fata sans-IO switch", b"fata_openflow_switch",
                                         b"0", b"Fata OpenFlow 1.3 switch")
        self._deadline: float | None = None
        self.min_frame = min_frame
        self.groups = GroupTable(self._port_live)
        self.meters = MeterTable()

    def _port_live(self, port_no: int) -> bool:
        port = self.ports.get(port_no)
        return port is not None and not port.config & PortConfig.PORT_DOWN and not (
            port.state & PortState.LINK_DOWN)

    # --- time -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When a flow may time out (call :meth:`on_timer` then), or None."""
        return self._deadline

    def on_timer(self, now: float) -> Emitted:
        out = Emitted()
        self._expire(now, out)
        return out

    def _expire(self, now: float, out: Emitted) -> None:
        if self._deadline is not None and now >= self._deadline:
            out.messages.extend(self.tables.expire(now))
            self._deadline = self.tables.next_deadline()

    def _tables_changed(self) -> None:
        self._deadline = self.tables.next_deadline()

    # --- the data path ----------------------------------------------------------------

    def process(self, in_port: int, frames: Iterable[bytes], now: float) -> Emitted:
        """A batch of frames received on ``in_port`` through the pipeline.  ``in_port``
        must be one of the switch's ports (``KeyError`` otherwise: the caller's mistake, not
        something a frame can cause)."""
        out = Emitted()
        self._expire(now, out)
        port = self.ports[in_port]
        for frame in frames:
            port.rx_packets += 1
            port.rx_bytes += len(frame)
            if port.config & (PortConfig.PORT_DOWN | PortConfig.NO_RECV):
                port.rx_dropped += 1
                continue
            self._pipeline(in_port, bytearray(frame), now, out)
        return out

    def _pipeline(self, in_port: int, frame: bytearray, now: float, out: Emitted) -> None:
        parsed = parse(frame, in_port)
        metadata = 0
        action_set: dict[object, A.Action] = {}
        table_id = 0
        tables = self.tables.tables
        entry: FlowEntry | None = None
        while True:
            table = tables[table_id]
            table.lookup_count += 1
            entry = table.lookup(parsed.key, parsed.fields, metadata)
            if entry is None:
                return  # a miss without a table-miss entry drops the packet (5.4)
            table.matched_count += 1
            entry.packet_count += 1
            entry.byte_count += len(frame)
            entry.last_used = now
            goto = None
            for ins in entry.ordered:
                kind = type(ins)
                if kind is I.Meter:
                    got = self._meter(ins.meter_id, frame, parsed, now)
                    if got is None:
                        return
                    parsed = got
                elif kind is I.ApplyActions:
                    got = self._apply(ins.actions, frame, parsed, in_port, metadata, entry,
                                      now, out)
                    if got is None:
                        return
                    parsed = got
                elif kind is I.ClearActions:
                    action_set.clear()
                elif kind is I.WriteActions:
                    for a in ins.actions:
                        key = (A.SetField, a.field.field) if isinstance(a, A.SetField) else type(a)
                        action_set[key] = a
                elif kind is I.WriteMetadata:
                    metadata = (metadata & ~ins.metadata_mask) | (ins.metadata & ins.metadata_mask)
                elif kind is I.GotoTable:
                    goto = ins.table_id
            if goto is None:
                break
            table_id = goto
        if action_set:
            if A.Group in action_set:  # 5.10: a group in the set overrides its output
                action_set.pop(A.Output, None)
            ordered = sorted(action_set.values(), key=lambda a: _SET_ORDER[type(a)])
            self._apply(tuple(ordered), frame, parsed, in_port, metadata, entry, now, out)

    def _meter(self, meter_id: int, frame: bytearray, parsed: Parsed,
               now: float) -> Parsed | None:
        """The packet through a meter: None when a drop band took it, else the packet as
        parsed (again, when a DSCP remark band changed it)."""
        m = self.meters.meters.get(meter_id)
        if m is None:
            return parsed
        band = m.meter(len(frame), now)
        if band is None:
            return parsed
        if not isinstance(band, DscpRemarkBand):
            return None
        dscp = parsed.fields.get(OxmField.IP_DSCP)
        if dscp is not None and set_field(frame, parsed, OxmField.IP_DSCP,
                                          remark(dscp, band.prec_level)):
            tunnel = parsed.fields.get(_TUNNEL_ID)
            parsed = parse(frame, parsed.fields[OxmField.IN_PORT])
            if tunnel is not None:
                parsed.set(_TUNNEL_ID, tunnel)
        return parsed

    def _apply(self, actions: tuple[A.Action, ...], frame: bytearray, parsed: Parsed,
               in_port: int, metadata: int, origin: Origin, now: float,
               out: Emitted) -> Parsed | None:
        """Run ``actions`` on the packet; the packet as parsed afterwards, or None when it
        was dropped (a TTL that ran out)."""
        for a in actions:
            kind = type(a)
            if kind is A.Output:
                self._output(a.port, a.max_len, frame, parsed, metadata, origin, now, out)
                continue
            if kind is A.Group:
                self._group(a.group_id, frame, parsed, metadata, origin, now, out)
                continue
            if kind is A.SetField:
                tlv = a.field
                if tlv.field == _TUNNEL_ID:
                    parsed.set(_TUNNEL_ID, tlv.int_value)
                    continue
                changed: bool | None = set_field(frame, parsed, tlv.field, tlv.int_value)
            elif kind is A.PushVlan:
                changed = push_vlan(frame, parsed, a.ethertype)
            elif kind is A.PopVlan:
                changed = pop_vlan(frame, parsed)
            elif kind is A.PushMpls:
                changed = push_mpls(frame, parsed, a.ethertype)
            elif kind is A.PopMpls:
                changed = pop_mpls(frame, parsed, a.ethertype)
            elif kind is A.PushPbb:
                changed = push_pbb(frame, parsed, a.ethertype)
            elif kind is A.PopPbb:
                changed = pop_pbb(frame, parsed)
            elif kind is A.SetNwTtl:
                changed = set_nw_ttl(frame, parsed, a.ttl)
            elif kind is A.SetMplsTtl:
                changed = set_mpls_ttl(frame, parsed, a.ttl)
            elif kind is A.CopyTtlOut or kind is A.CopyTtlIn:
                changed = copy_ttl(frame, parsed, kind is A.CopyTtlOut)
            elif kind is A.DecNwTtl or kind is A.DecMplsTtl:
                changed = (dec_nw_ttl if kind is A.DecNwTtl else dec_mpls_ttl)(frame, parsed)
                if changed is None:
                    self._packet_in(frame, parsed, metadata, OFPCML_NO_BUFFER, origin, out,
                                    PacketInReason.INVALID_TTL)
                    return None
            else:  # refused when installed; nothing else reaches the data path
                raise AssertionError(f"unchecked action {a}")
            if changed:
                tunnel = parsed.fields.get(_TUNNEL_ID)
                parsed = parse(frame, in_port)
                if tunnel is not None:
                    parsed.set(_TUNNEL_ID, tunnel)
        return parsed

    def _output(self, port_no: int, max_len: int, frame: bytearray, parsed: Parsed,
                metadata: int, origin: Origin, now: float, out: Emitted) -> None:
        in_port = parsed.fields[OxmField.IN_PORT]
        if port_no == PortNo.CONTROLLER:
            self._packet_in(frame, parsed, metadata, max_len, origin, out)
        elif port_no == PortNo.LOCAL:
            out.send(PortNo.LOCAL, bytes(frame))
        elif port_no == PortNo.TABLE:  # packet-out only: the packet through the tables
            self._pipeline(in_port, bytearray(frame), now, out)
        elif port_no in (PortNo.FLOOD, PortNo.ALL):
            for p in self.ports.values():
                if p.port_no != in_port:
                    self._transmit(p, frame, out)
        else:
            target = in_port if port_no == PortNo.IN_PORT else port_no
            p = self.ports.get(target)
            # a packet goes back where it came from only through OFPP_IN_PORT (5.12)
            if p is not None and (target != in_port or port_no == PortNo.IN_PORT):
                self._transmit(p, frame, out)

    def _group(self, group_id: int, frame: bytearray, parsed: Parsed, metadata: int,
               origin: Origin, now: float, out: Emitted, depth: int = 0) -> None:
        """The packet through a group: each chosen bucket's actions on a copy of it, in the
        order the bucket lists them."""
        g = self.groups.groups.get(group_id)
        if g is None or depth > 16:
            return
        g.packet_count += 1
        g.byte_count += len(frame)
        in_port = parsed.fields[OxmField.IN_PORT]
        tunnel = parsed.fields.get(_TUNNEL_ID)
        for i in self.groups.choose(g, hash(parsed.key)):
            g.bucket_packets[i] += 1
            g.bucket_bytes[i] += len(frame)
            copy = bytearray(frame)
            p = parse(copy, in_port)
            if tunnel is not None:
                p.set(_TUNNEL_ID, tunnel)
            self._apply(g.buckets[i].actions, copy, p, in_port, metadata, origin, now, out)

    def _transmit(self, port: SwitchPort, frame: bytearray, out: Emitted) -> None:
        if not port.forwards:
            port.tx_dropped += 1
            return
        data = bytes(frame)
        if len(data) < self.min_frame:
            data += bytes(self.min_frame - len(data))
        port.tx_packets += 1
        port.tx_bytes += len(data)
        out.send(port.port_no, data)

    def _packet_in(self, frame: bytearray, parsed: Parsed, metadata: int, max_len: int,
                   origin: Origin, out: Emitted, reason: int | None = None) -> None:
        """7.4.1: the pipeline fields (in_port, and metadata and tunnel ID when set) go in
        the match."""
        in_port = parsed.fields[OxmField.IN_PORT]
        port = self.ports.get(in_port)
        if port is not None and port.config & PortConfig.NO_PACKET_IN:
            return
        data = bytes(frame)
        if len(data) < self.min_frame:  # as the packet would be on a wire
            data += bytes(self.min_frame - len(data))
        buffer_id = OFP_NO_BUFFER
        if max_len != OFPCML_NO_BUFFER and len(data) > max_len and self.n_buffers:
            buffer_id = self._buffer(in_port, data)
            data = data[:max_len]
        fields = [oxm("in_port", in_port)]
        if metadata:
            fields.append(oxm("metadata", metadata))
        tunnel = parsed.fields.get(_TUNNEL_ID)
        if tunnel:
            fields.append(oxm("tunnel_id", tunnel))
        total_len = len(data) if buffer_id == OFP_NO_BUFFER else len(self.buffers[buffer_id][1])
        if origin is None:
            table_id, cookie = 0, _NO_COOKIE
            why = PacketInReason.ACTION
        else:
            table_id, cookie = origin.table_id, origin.cookie
            why = PacketInReason.NO_MATCH if origin.is_table_miss else PacketInReason.ACTION
        out.messages.append(M.PacketIn(buffer_id, total_len, why if reason is None else reason,
                                       table_id, cookie, Match(tuple(fields)), data))

    def _buffer(self, in_port: int, data: bytes) -> int:
        buffer_id = self._next_buffer
        self._next_buffer = (self._next_buffer + 1) % 0x80000000
        self.buffers[buffer_id] = (in_port, data)
        while len(self.buffers) > self.n_buffers:
            self.buffers.popitem(last=False)
        return buffer_id

    # --- the control channel ----------------------------------------------------------

    def handle(self, msg: M.Message | M.Malformed, now: float) -> Emitted:
        """One message from the controller; what to send back (nothing for a request that
        succeeds silently, as a flow-mod does)."""
        out = Emitted()
        self._expire(now, out)
        if isinstance(msg, M.Malformed):
            out.messages.append(msg.error)
            return out
        err = self._dispatch(msg, now, out)
        if err is not None:
            out.messages.append(M.ErrorMsg.for_request(err, msg.encode(), msg.xid))
        return out

    def _dispatch(self, msg: M.Message, now: float, out: Emitted) -> ErrorCode | None:
        reply = out.messages.append
        xid = msg.xid
        if isinstance(msg, M.EchoRequest):
            reply(M.EchoReply(msg.data, xid=xid))
        elif isinstance(msg, M.FeaturesRequest):
            caps = Capabilities.FLOW_STATS | Capabilities.TABLE_STATS | Capabilities.PORT_STATS
            reply(M.FeaturesReply(self.datapath_id, self.n_buffers, len(self.tables), 0,
                                  int(caps), xid=xid))
        elif isinstance(msg, M.GetConfigRequest):
            reply(M.GetConfigReply(self.config_flags, self.miss_send_len, xid=xid))
        elif isinstance(msg, M.SetConfig):
            if msg.flags != ConfigFlags.FRAG_NORMAL:
                # this switch neither drops nor reassembles fragments
                return _err(ErrorType.SWITCH_CONFIG_FAILED, SwitchConfigFailedCode.BAD_FLAGS)
            self.config_flags, self.miss_send_len = msg.flags, msg.miss_send_len
        elif isinstance(msg, M.BarrierRequest):
            reply(M.BarrierReply(xid=xid))  # every message is done when handle returns
        elif isinstance(msg, M.FlowMod):
            return self._flow_mod(msg, now, out)
        elif isinstance(msg, M.PacketOut):
            return self._packet_out(msg, now, out)
        elif isinstance(msg, M.MultipartRequest):
            return self._multipart(msg, now, out)
        elif isinstance(msg, M.GroupMod):
            return self._group_mod(msg, now, out)
        elif isinstance(msg, M.MeterMod):
            return self._meter_mod(msg, now, out)
        elif isinstance(msg, M.PortMod):
            return self._port_mod(msg, out)
        elif isinstance(msg, M.TableMod):
            if self.tables.tables_for(msg.table_id) is None:
                return _err(ErrorType.TABLE_MOD_FAILED, TableModFailedCode.BAD_TABLE)
        elif isinstance(msg, M.Experimenter):
            return _err(ErrorType.BAD_REQUEST, BadRequestCode.BAD_EXPERIMENTER)
        elif isinstance(msg, (M.Hello, M.EchoReply, M.ErrorMsg)):
            pass  # the channel's business, or answers to nothing we asked
        else:  # queue config, roles, async config: not implemented
            return _err(ErrorType.BAD_REQUEST, BadRequestCode.BAD_TYPE)
        return None

    def _group_mod(self, msg: M.GroupMod, now: float, out: Emitted) -> ErrorCode | None:
        err, deleted = self.groups.apply(msg, now, self.check_actions)
        if err is not None:
            return err
        if deleted:  # 6.5: the flows that send to a deleted group go with it
            doomed = [e for t in self.tables.tables for e in t.entries
                      if any(e.uses_group(g) for g in deleted)]
            out.messages.extend(self.tables.delete(doomed, FlowRemovedReason.GROUP_DELETE, now))
            self._tables_changed()
        return None

    def _meter_mod(self, msg: M.MeterMod, now: float, out: Emitted) -> ErrorCode | None:
        err, deleted = self.meters.apply(msg, now)
        if err is not None:
            return err
        if deleted:  # the flows that use a deleted meter go with it
            gone = set(deleted)
            doomed = [e for t in self.tables.tables for e in t.entries
                      if any(isinstance(i, I.Meter) and i.meter_id in gone
                             for i in e.instructions)]
            out.messages.extend(self.tables.delete(doomed, FlowRemovedReason.DELETE, now))
            self._tables_changed()
        return None

    def _port_mod(self, msg: M.PortMod, out: Emitted) -> ErrorCode | None:
        port = self.ports.get(msg.port_no)
        if port is None:
            return _err(ErrorType.PORT_MOD_FAILED, PortModFailedCode.BAD_PORT)
        if msg.hw_addr != port.hw_addr:
            return _err(ErrorType.PORT_MOD_FAILED, PortModFailedCode.BAD_HW_ADDR)
        known = sum(int(c) for c in PortConfig)  # an int: ~ of an IntFlag stays within it
        if msg.mask & ~known:
            return _err(ErrorType.PORT_MOD_FAILED, PortModFailedCode.BAD_CONFIG)
        config = (port.config & ~msg.mask) | (msg.config & msg.mask)
        if config != port.config:  # 7.4.3: a port's change is reported, whoever made it
            port.config = config
            out.messages.append(M.PortStatus(PortReason.MODIFY, port.desc()))
        return None

    def link_changed(self, port_no: int, up: bool) -> Emitted:
        """The link of ``port_no`` went up or down (the adapter watches the device): the
        port's ``OFPPS_LINK_DOWN`` bit, and a PORT_STATUS saying so when it changed.
        Fast-failover groups read the bit, so their next packet takes the live bucket."""
        out = Emitted()
        port = self.ports.get(port_no)
        if port is None:
            return out
        state = port.state & ~PortState.LINK_DOWN if up else port.state | PortState.LINK_DOWN
        if state != port.state:
            port.state = state
            out.messages.append(M.PortStatus(PortReason.MODIFY, port.desc()))
        return out

    # --- checks -----------------------------------------------------------------------

    def check_actions(self, actions: Iterable[A.Action],
                      packet_out: bool = False) -> ErrorCode | None:
        """The ``OFPET_BAD_ACTION`` error for the first action this switch cannot run."""
        for a in actions:
            if isinstance(a, A.ExperimenterAction):
                return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_EXPERIMENTER)
            if isinstance(a, A.Group) and a.group_id not in self.groups:
                return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_GROUP)
            if isinstance(a, A.SetQueue):
                return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_QUEUE)
            if not isinstance(a, _IMPLEMENTED_ACTIONS):
                return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_TYPE)
            if isinstance(a, A.Output):
                ok = (a.port in self.ports or a.port in _OUTPUT_RESERVED
                      or (packet_out and a.port == PortNo.TABLE))
                if not ok:
                    return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_PORT)
            elif isinstance(a, A.SetField):
                err = A.check_set_field(a)
                if err is not None:
                    return err
                if a.field.field not in SETTABLE:
                    return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_SET_TYPE)
            elif type(a) in _PUSH_TYPES and a.ethertype not in _PUSH_TYPES[type(a)]:
                return _err(ErrorType.BAD_ACTION, BadActionCode.BAD_ARGUMENT)
        return None

    def check_instructions(self, instructions: tuple[I.Instruction, ...],
                           table_id: int) -> ErrorCode | None:
        """The error for the first instruction this switch cannot install in ``table_id``."""
        seen: set[int] = set()
        for ins in instructions:
            if ins.instruction_type in seen:  # 7.2.4: at most one of each type
                return _err(ErrorType.BAD_INSTRUCTION, BadInstructionCode.UNSUP_INST)
            seen.add(ins.instruction_type)
            if isinstance(ins, I.GotoTable):
                if ins.table_id <= table_id or ins.table_id >= len(self.tables):
                    return _err(ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_TABLE_ID)
            elif isinstance(ins, I.Meter) and ins.meter_id not in self.meters:
                return _err(ErrorType.METER_MOD_FAILED, MeterModFailedCode.UNKNOWN_METER)
            elif isinstance(ins, I.ExperimenterInstruction):
                return _err(ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_EXPERIMENTER)
            elif isinstance(ins, (I.ApplyActions, I.WriteActions)):
                err = self.check_actions(ins.actions)
                if err is not None:
                    return err
        return None

    # --- flow-mod, packet-out, multipart ----------------------------------------------

    def _flow_mod(self, mod: M.FlowMod, now: float, out: Emitted) -> ErrorCode | None:
        installs = mod.command in (FlowModCommand.ADD, FlowModCommand.MODIFY,
                                   FlowModCommand.MODIFY_STRICT)
        if installs and mod.table_id < len(self.tables):  # deletes ignore instructions
            err = self.check_instructions(mod.instructions, mod.table_id)
            if err is not None:
                return err
        if mod.buffer_id != OFP_NO_BUFFER and mod.buffer_id not in self.buffers:
            return _err(ErrorType.BAD_REQUEST, BadRequestCode.BUFFER_UNKNOWN)
        err, removed = self.tables.flow_mod(mod, now)
        if err is not None:
            return err
        out.messages.extend(removed)
        self._tables_changed()
        if mod.buffer_id != OFP_NO_BUFFER:  # 6.4: the buffered packet goes through the tables
            in_port, data = self.buffers.pop(mod.buffer_id)
            self._pipeline(in_port, bytearray(data), now, out)
        return None

    def _packet_out(self, msg: M.PacketOut, now: float, out: Emitted) -> ErrorCode | None:
        if msg.in_port not in self.ports and msg.in_port not in (PortNo.CONTROLLER,
                                                                  PortNo.LOCAL):
            return _err(ErrorType.BAD_REQUEST, BadRequestCode.BAD_PORT)
        err = self.check_actions(msg.actions, packet_out=True)
        if err is not None:
            return err
        data = msg.data
        if msg.buffer_id != OFP_NO_BUFFER:
            if msg.buffer_id not in self.buffers:
                return _err(ErrorType.BAD_REQUEST, BadRequestCode.BUFFER_UNKNOWN)
            data = self.buffers.pop(msg.buffer_id)[1]
        frame = bytearray(data)
        self._apply(msg.actions, frame, parse(frame, msg.in_port), msg.in_port, 0, None,
                    now, out)
        return None

    def _multipart(self, msg: M.MultipartRequest, now: float, out: Emitted) -> ErrorCode | None:
        body = msg.body
        replies: list[MP.Body]
        if isinstance(body, MP.DescRequest):
            replies = [self.desc]
        elif isinstance(body, (MP.FlowStatsRequest, MP.AggregateStatsRequest)):
            err = self.tables.check_table_id(body.table_id)
            if err is not None:
                return err
            chosen = self.tables.select(Selection(body.table_id, body.match, body.cookie,
                                                  body.cookie_mask, body.out_port,
                                                  body.out_group))
            if isinstance(body, MP.AggregateStatsRequest):
                replies = [MP.AggregateStatsReply(sum(e.packet_count for e in chosen),
                                                  sum(e.byte_count for e in chosen),
                                                  len(chosen))]
            else:
                replies = self._split_flows([e.stats(now) for e in chosen])
        elif isinstance(body, MP.TableStatsRequest):
            replies = [MP.TableStatsReply(tuple(
                MP.TableStats(t.table_id, len(t.entries), t.lookup_count, t.matched_count)
                for t in self.tables.tables))]
        elif isinstance(body, MP.PortStatsRequest):
            if body.port_no == PortNo.ANY:
                ports = list(self.ports.values())
            elif body.port_no in self.ports:
                ports = [self.ports[body.port_no]]
            else:
                return _err(ErrorType.BAD_REQUEST, BadRequestCode.BAD_PORT)
            replies = [MP.PortStatsReply(tuple(p.stats(now - self.started) for p in ports))]
        elif isinstance(body, MP.GroupStatsRequest):
            ids = sorted(self.groups.groups) if body.group_id == OFPG_ALL else (
                [body.group_id] if body.group_id in self.groups else [])
            replies = [MP.GroupStatsReply(tuple(
                self.groups.groups[g].stats(now, self._group_refs(g)) for g in ids))]
        elif isinstance(body, MP.GroupDescRequest):
            replies = [MP.GroupDescReply(tuple(self.groups.groups[g].desc()
                                               for g in sorted(self.groups.groups)))]
        elif isinstance(body, MP.GroupFeaturesRequest):
            actions = sum(1 << cls.action_type for cls in _IMPLEMENTED_ACTIONS)
            n = self.groups.max_groups
            replies = [MP.GroupFeaturesReply(
                sum(1 << t for t in GroupType),
                int(GroupCapabilities.SELECT_WEIGHT | GroupCapabilities.SELECT_LIVENESS
                    | GroupCapabilities.CHAINING | GroupCapabilities.CHAINING_CHECKS),
                (n, n, n, n), (actions, actions, actions, actions))]
        elif isinstance(body, (MP.MeterStatsRequest, MP.MeterConfigRequest)):
            meters = self.meters.meters
            ids = sorted(meters) if body.meter_id == OFPM_ALL else (
                [body.meter_id] if body.meter_id in meters else [])
            if isinstance(body, MP.MeterConfigRequest):
                replies = [MP.MeterConfigReply(tuple(meters[m].config() for m in ids))]
            else:
                replies = [MP.MeterStatsReply(tuple(
                    meters[m].stats(now, self._meter_refs(m)) for m in ids))]
        elif isinstance(body, MP.MeterFeaturesRequest):
            replies = [MP.MeterFeaturesReply(
                self.meters.max_meters,
                (1 << MeterBandType.DROP) | (1 << MeterBandType.DSCP_REMARK),
                int(MeterFlags.KBPS | MeterFlags.PKTPS | MeterFlags.BURST | MeterFlags.STATS),
                MAX_BANDS, 0)]
        elif isinstance(body, MP.PortDescRequest):
            replies = [MP.PortDescReply(tuple(p.desc() for p in self.ports.values()))]
        else:  # queue and table-features requests: not implemented
            return _err(ErrorType.BAD_REQUEST, BadRequestCode.BAD_MULTIPART)
        for i, reply in enumerate(replies):
            more = MultipartFlags.MORE if i < len(replies) - 1 else 0
            out.messages.append(M.MultipartReply(reply, int(more), xid=msg.xid))
        return None

    def _meter_refs(self, meter_id: int) -> int:
        return sum(1 for t in self.tables.tables for e in t.entries
                   if any(isinstance(i, I.Meter) and i.meter_id == meter_id
                          for i in e.instructions))

    def _group_refs(self, group_id: int) -> int:
        """Flows and groups that send to ``group_id`` (group stats' ``ref_count``)."""
        flows = sum(1 for t in self.tables.tables for e in t.entries if e.uses_group(group_id))
        return flows + sum(1 for g in self.groups.groups.values() if group_id in g.chained())

    @staticmethod
    def _split_flows(flows: list[MP.FlowStats]) -> list[MP.Body]:
        """Flow stats in as many replies as it takes for each to fit a message."""
        bodies: list[MP.Body] = []
        chunk: list[MP.FlowStats] = []
        size = 0
        for f in flows:
            n = len(f.encode())
            if chunk and size + n > _MAX_REPLY_BODY:
                bodies.append(MP.FlowStatsReply(tuple(chunk)))
                chunk, size = [], 0
            chunk.append(f)
            size += n
        bodies.append(MP.FlowStatsReply(tuple(chunk)))
        return bodies

