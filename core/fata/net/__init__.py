"""Fata's own TCP/IP: sans-IO protocol layers and the stack that assembles them.

The layering follows mirage-tcpip: a ``Netif`` moves Ethernet frames; ``ethernet`` frames and
unframes; ``arp`` resolves next hops; ``ipv4`` routes, fragments and reassembles; ``icmp``,
``udp`` and ``tcp`` sit on top; ``dhcp`` configures the address.  Every protocol module is a
sans-IO engine (bytes and ``now`` in, bytes and deadlines out); only ``stack`` (the asyncio glue
implementing ``fata.devices.Stack``) and the platform's netif touch the event loop.

IPv6 is meant to sit beside ``ipv4``: the transport engines take addresses as opaque ``bytes``
and the pseudo-header checksum as a precomputed partial sum, so they do not assume IPv4.
"""
