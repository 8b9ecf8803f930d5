"""Device interfaces: what an appliance sees of the machine, whatever platform provides it.

An appliance's ``start()`` receives instances of these interfaces and never learns the
target: the same appliance runs over host sockets, Fata's own TCP/IP on a TAP device, or
Xen-ABI rings.  Platforms (``fata.platform``) provide the implementations.
"""

from fata.devices.clock import Clock
from fata.devices.console import Console
from fata.devices.kv import KV, KeyNotFound
from fata.devices.lifecycle import Lifecycle
from fata.devices.random import Random
from fata.devices.stack import (
    Address,
    DatagramHandler,
    Flow,
    FlowHandler,
    ReplyCache,
    Stack,
    TcpListener,
    UdpEndpoint,
    reply_bytes,
)

__all__ = [
    "KV",
    "Address",
    "Clock",
    "Console",
    "DatagramHandler",
    "Flow",
    "FlowHandler",
    "KeyNotFound",
    "Lifecycle",
    "Random",
    "ReplyCache",
    "Stack",
    "TcpListener",
    "UdpEndpoint",
    "reply_bytes",
]
