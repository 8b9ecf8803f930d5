"""The OpenFlow switch appliance: Ethernet ports switched by the OpenFlow 1.3 engine, and a
TCP channel to the controller over the stack (host sockets by default).  Built with
``--key role=controller`` it is instead the learning-switch controller, listening on the
stack for switches (OpenFlow 1.0 and 1.3), with no ports.

The ports are the ``netif()`` devices ``port1`` .. ``portN``, N the configure-time key
``ports`` (``fata build appliances/openflow_switch --key ports=8``; 4 by default); OpenFlow
port N is ``portN``.  Ports not given on the command line (``fata run ... --netif
port1=if:IF``) are TAPs named ``fata-portN``, so a switch with fewer wires still starts.
"""

from fata.config import (
    Appliance,
    arg,
    clock,
    console,
    key,
    kv_runtime,
    lifecycle,
    netif,
    random,
    stack,
    when,
)

MAX_PORTS = 32


def ports(n: int) -> dict:
    """Devices ``port1`` .. ``portN``, and the removal of any beyond."""
    return {f"port{i}": netif() if i <= n else None for i in range(1, MAX_PORTS + 1)}


appliance = Appliance(
    name="openflow_switch",
    version="0.1.0",
    entry="fata_openflow_switch.unikernel:start",
    devices={
        **{name: spec for name, spec in ports(4).items() if spec is not None},
        "stack": stack(),  # the control channel only; ports carry no Fata TCP/IP
        "tls": kv_runtime(),  # --ca FILE for a tls: channel: fata run --kv tls=DIR, or host paths
        "random": random(),  # the TLS handshake's
        "clock": clock(),
        "console": console(),
        "lifecycle": lifecycle(),
    },
    args=[
        arg("controller", type=str, multiple=True, default=["127.0.0.1:6653"],
            help="a controller's HOST:PORT ([v6]:PORT for IPv6); tls:HOST:PORT for a TLS "
                 "channel (Fata's TLS engine; the controller's certificate is checked "
                 "against --ca); repeatable: every controller is kept connected, with the "
                 "roles they ask for (ROLE_REQUEST)"),
        arg("ca", type=str, default="",
            help="PEM file of the CA certificates a tls: controller's certificate must "
                 "chain to (read from the run-time store 'tls')"),
        arg("datapath_id", type=str, default="",
            help="64-bit datapath ID (decimal or 0x hex); default: from port1's MAC, as "
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
        arg("link_check", type=float, default=1.0,
            help="seconds between checks of the ports' links; a change is reported to the "
                 "controller (PORT_STATUS) and fast-failover groups follow it (0: never)"),
        arg("outbox_limit", type=int, default=1 << 20,
            help="bytes queued for a controller that is not reading, beyond which "
                 "PACKET_INs are dropped (counted) and its requests are not read until the "
                 "queue drains"),
    ],
    keys=[key("ports", choices=[str(n) for n in range(1, MAX_PORTS + 1)], default="4",
              help="how many ports (netif() devices port1 .. portN) the switch has"),
          key("role", choices=["switch", "controller"], default="switch",
              help="'controller' builds the learning-switch controller (OpenFlow 1.0 and "
                   "1.3) instead of the switch: the image holds only the role built")],
    variants=[
        *(when("ports", str(n), devices=ports(n)) for n in range(1, MAX_PORTS + 1) if n != 4),
        when("role", "controller", entry="fata_openflow_switch.controller_unikernel:start",
             devices={**ports(0), "tls": None, "random": None}, args=[
                 arg("listen", type=str, default="127.0.0.1",
                     help="address to accept switches on ('' for every address)"),
                 arg("port", type=int, default=6653, help="OpenFlow TCP port"),
                 arg("mac_aging", type=float, default=300.0,
                     help="seconds a learned address is kept"),
                 arg("idle_timeout", type=int, default=0,
                     help="idle timeout of the flows installed (0: none)"),
                 arg("hard_timeout", type=int, default=0,
                     help="hard timeout of the flows installed (0: none)"),
             ]),
    ],
)
