"""The controller benchmark's competitor: a learning switch on os-ken, making the decisions
Fata's controller role makes (``fata_openflow_switch.l2_controller``), so that both answer
the same PACKET_INs with the same commands and the benchmark compares the frameworks.

It is the logic of ryu's ``simple_switch.py`` and ``simple_switch_13.py`` (os-ken 4 no
longer ships its sample apps), for OpenFlow 1.0 and 1.3: learn the source on its in-port;
a known unicast destination gets a flow (in-port and destination MAC, output), applied to
the buffered packet, or followed by a PACKET_OUT when unbuffered; anything else is flooded
with a PACKET_OUT; a destination behind its own in-port is dropped.  In 1.3 a table-miss
flow to the controller is installed when the switch joins.  Nothing is logged per packet.

    python osken_launch.py osken_simple_switch.py -- --ofp-tcp-listen-port PORT
"""

from __future__ import annotations

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_0, ofproto_v1_3


class SimpleSwitch(app_manager.OSKenApp):
    """Per datapath, MAC address to port."""

    OFP_VERSIONS = [ofproto_v1_0.OFP_VERSION, ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mac_to_port: dict[int, dict[bytes, int]] = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev) -> None:
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        if ofp.OFP_VERSION == ofproto_v1_3.OFP_VERSION:
            actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
            dp.send_msg(parser.OFPFlowMod(dp, priority=0, match=parser.OFPMatch(), instructions=[
                parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        v13 = ofp.OFP_VERSION == ofproto_v1_3.OFP_VERSION
        in_port = msg.match["in_port"] if v13 else msg.in_port
        data = bytes(msg.data)
        if len(data) < 14:
            return
        dst, src = data[0:6], data[6:12]
        table = self.mac_to_port.setdefault(dp.id, {})
        if not src[0] & 1:
            table[src] = in_port
        out_port = None if dst[0] & 1 else table.get(dst)
        if out_port == in_port:
            return
        unbuffered = msg.buffer_id == ofp.OFP_NO_BUFFER
        if out_port is None:
            dp.send_msg(parser.OFPPacketOut(dp, buffer_id=msg.buffer_id, in_port=in_port,
                                            actions=[parser.OFPActionOutput(ofp.OFPP_FLOOD, 0)],
                                            data=data if unbuffered else None))
            return
        actions = [parser.OFPActionOutput(out_port, 0)]
        if v13:
            dp.send_msg(parser.OFPFlowMod(
                dp, buffer_id=msg.buffer_id, match=parser.OFPMatch(in_port=in_port, eth_dst=dst.hex(":")),
                instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]))
        else:
            dp.send_msg(parser.OFPFlowMod(dp, parser.OFPMatch(in_port=in_port, dl_dst=dst), 0,
                                          ofp.OFPFC_ADD, buffer_id=msg.buffer_id,
                                          actions=actions))
        if unbuffered:
            dp.send_msg(parser.OFPPacketOut(dp, buffer_id=msg.buffer_id, in_port=in_port,
                                            actions=actions, data=data))
