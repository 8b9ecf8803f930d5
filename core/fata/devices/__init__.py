"""Device interfaces: what an appliance sees of the machine, whatever platform provides it.

An appliance's ``start()`` receives instances of these interfaces and never learns the
target: the same appliance runs over host sockets, Fata's own TCP/IP on a TAP device, or
Xen-ABI rings.  Platforms (``fata.platform``) provide the implementations.
"""

from fata.devices.block import Block, BlockError, BlockInfo
from fata.devices.clock import Clock
from fata.devices.console import Console
from fata.devices.errors import (
    AddressInUse,
    AddressNotAvailable,
    NetworkUnreachable,
    StackError,
)
from fata.devices.kv import KV, KeyNotFound
from fata.devices.lifecycle import Lifecycle
from fata.devices.netif import Netif
from fata.devices.random import Random
from fata.devices.stack import (
    Address,
    AddressLike,
    DatagramHandler,
    Flow,
    FlowHandler,
    Interface,
    IPAddress,
    ReplyCache,
    Stack,
    TcpListener,
    UdpEndpoint,
    bind_address,
    call_handler,
    flow_failure,
    handler_failure,
    ip_address,
    reply_bytes,
    serve_flow,
    sockaddr,
)

__all__ = [
    "KV",
    "Address",
    "AddressInUse",
    "AddressLike",
    "AddressNotAvailable",
    "Block",
    "BlockError",
    "BlockInfo",
    "Clock",
    "Console",
    "DatagramHandler",
    "Flow",
    "FlowHandler",
    "IPAddress",
    "Interface",
    "KeyNotFound",
    "Lifecycle",
    "Netif",
    "NetworkUnreachable",
    "Random",
    "ReplyCache",
    "Stack",
    "StackError",
    "TcpListener",
    "UdpEndpoint",
    "bind_address",
    "call_handler",
    "flow_failure",
    "handler_failure",
    "ip_address",
    "reply_bytes",
    "serve_flow",
    "sockaddr",
]
