"""The OpenFlow switch appliance: four Ethernet ports switched by the OpenFlow 1.3 engine,
and a TCP channel to the controller over the stack (host sockets by default).

Ports not given on the command line (``fata run ... --netif p1=if:IF``) are TAPs named
``fata-pN``, so a switch with fewer wires still starts; OpenFlow port N is ``pN``.
"""

from fata.config import Appliance, arg, clock, console, lifecycle, netif, stack

appliance = Appliance(
    name="openflow_switch",
    version="0.1.0",
    entry="fata_openflow_switch.unikernel:start",
    devices={
        "p1": netif(),
        "p2": netif(),
        "p3": netif(),
        "p4": netif(),
        "stack": stack(),  # the control channel only; ports carry no Fata TCP/IP
        "clock": clock(),
        "console": console(),
        "lifecycle": lifecycle(),
    },
    args=[
        arg("controller", type=str, default="127.0.0.1:6653",
            help="the controller's HOST:PORT ([v6]:PORT for IPv6)"),
        arg("datapath_id", type=str, default="",
            help="64-bit datapath ID (decimal or 0x hex); default: from port p1's MAC, as "
                 "Open vSwitch does"),
        arg("fail_mode", type=str, default="secure", choices=["secure", "standalone"],
            help="with no controller connected: 'secure' forwards only by the flows "
                 "installed (none at start: everything is dropped); 'standalone' acts as "
                 "a MAC-learning switch"),
        arg("mac_aging", type=float, default=300.0,
            help="seconds a learned address is kept in fail-standalone mode"),
        arg("reconnect_min", type=float, default=0.5,
            help="seconds before the first reconnection attempt; doubled after each "
                 "failure"),
        arg("reconnect_max", type=float, default=8.0,
            help="the longest wait between reconnection attempts"),
        arg("connect_timeout", type=float, default=5.0,
            help="seconds one connection attempt may take"),
        arg("probe_interval", type=float, default=5.0,
            help="seconds without a message from the controller before an ECHO_REQUEST, "
                 "and as many again before the connection is given up (0: never)"),
    ],
)
