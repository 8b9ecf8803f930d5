"""A minimal OpenFlow 1.3 L2 learning controller for os-ken, the e2e tests' real peer.

Written for these tests (not os-ken's sample app): on a switch's FEATURES_REPLY it installs
one table-miss flow sending everything to the controller; on each PACKET_IN it learns the
source MAC's port, installs an exact (in_port, eth_src, eth_dst) flow when the destination
is known, and sends the packet on with PACKET_OUT (flooded when the destination is unknown).
Every decision is logged on one line, which is what the tests read to know that the switch
really consulted the controller.

Run as a program (os-ken here has no ``osken-manager`` script): ``python osken_l2_app.py
--ofp-listen-host 127.0.0.1 --ofp-tcp-listen-port PORT``.
"""

from __future__ import annotations

import logging
import os
import sys

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


class L2Learner(app_manager.OSKenApp):
    """Per datapath, MAC address to port, learned from PACKET_INs."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ports_by_mac: dict[int, dict[bytes, int]] = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_joined(self, ev) -> None:
        datapath = ev.msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        to_controller = parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
        datapath.send_msg(parser.OFPFlowMod(
            datapath, priority=0, match=parser.OFPMatch(),
            instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                       [to_controller])]))
        self.logger.info("l2app: datapath %016x joined, table-miss installed", datapath.id)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev) -> None:
        msg = ev.msg
        datapath = msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        in_port = msg.match["in_port"]
        dst, src = bytes(msg.data[0:6]), bytes(msg.data[6:12])
        known = self.ports_by_mac.setdefault(datapath.id, {})
        known[src] = in_port
        out_port = known.get(dst, ofp.OFPP_FLOOD)
        self.logger.info("l2app: packet-in port %d %s -> %s, out %s", in_port, src.hex(":"),
                         dst.hex(":"), "flood" if out_port == ofp.OFPP_FLOOD else out_port)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_src=src.hex(":"), eth_dst=dst.hex(":"))
            datapath.send_msg(parser.OFPFlowMod(
                datapath, priority=10, match=match,
                instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]))
            self.logger.info("l2app: flow installed port %d %s -> %s out %d", in_port,
                             src.hex(":"), dst.hex(":"), out_port)
        unbuffered = msg.buffer_id == ofp.OFP_NO_BUFFER
        datapath.send_msg(parser.OFPPacketOut(
            datapath, buffer_id=msg.buffer_id, in_port=in_port, actions=actions,
            data=msg.data if unbuffered else None))


def main(argv: list[str]) -> None:
    """Run this app (and os-ken's OpenFlow handler it needs) until killed."""
    from os_ken import cfg
    from os_ken.lib import hub

    hub.patch(thread=False)
    cfg.CONF(argv, project="os_ken")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app_manager.AppManager.run_apps([os.path.abspath(__file__)])


if __name__ == "__main__":
    main(sys.argv[1:])
