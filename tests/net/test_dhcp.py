"""The DHCP client engine through a whole lease's life, with time passed in."""

from __future__ import annotations

from fata.net import dhcp

MAC = b"\x02\x11\x22\x33\x44\x55"
SERVER = bytes([10, 0, 0, 1])
OFFERED = bytes([10, 0, 0, 50])


def reply(client: dhcp.DhcpClient, kind: int, lease: int = 100) -> bytes:
    """A server message as dnsmasq would send it."""
    opts = [(dhcp.OPT_SERVER_ID, SERVER), (dhcp.OPT_SUBNET, bytes([255, 255, 255, 0])),
            (dhcp.OPT_ROUTER, SERVER), (dhcp.OPT_DNS, SERVER + bytes([9, 9, 9, 9])),
            (dhcp.OPT_LEASE, lease.to_bytes(4, "big"))]
    raw = bytearray(dhcp.build(kind, client.xid, MAC, options=opts))
    raw[0] = 2  # BOOTREPLY
    raw[16:20] = OFFERED  # yiaddr
    return bytes(raw)


def sent(out: list[tuple[bytes, bytes]]) -> list[tuple[bytes, int, dict[int, bytes]]]:
    return [(dst, (m := dhcp.parse(p)).msg_type or 0, m.options) for dst, p in out]


def test_full_lease_cycle() -> None:
    client = dhcp.DhcpClient(MAC, lambda n: bytes(range(n)), initial_timeout=2)
    [(dst, kind, _)] = sent(client.start(0.0))
    assert (dst, kind) == (dhcp.BROADCAST, dhcp.DISCOVER)
    assert client.on_timer(1.0) == []
    [(_, kind, _)] = sent(client.on_timer(2.0))  # retransmitted with backoff
    assert kind == dhcp.DISCOVER and client.deadline == 6.0
    [(dst, kind, opts)] = sent(client.input(reply(client, dhcp.OFFER), 2.5))
    assert (dst, kind) == (dhcp.BROADCAST, dhcp.REQUEST)
    assert opts[dhcp.OPT_REQUESTED_IP] == OFFERED and opts[dhcp.OPT_SERVER_ID] == SERVER
    assert client.input(reply(client, dhcp.ACK), 3.0) == []
    lease = client.lease
    assert client.state == dhcp.DhcpState.BOUND and lease is not None
    assert (lease.address, lease.prefix_len, lease.router) == (OFFERED, 24, SERVER)
    assert lease.dns == [SERVER, bytes([9, 9, 9, 9])] and client.lease_changed
    # T1 (50 s): renew by unicast to the server
    [(dst, kind, _)] = sent(client.on_timer(53.0))
    assert (dst, kind, client.state) == (SERVER, dhcp.REQUEST, dhcp.DhcpState.RENEWING)
    # no answer until T2 (87.5 s): rebind by broadcast
    out = []
    now = 53.0
    while client.state == dhcp.DhcpState.RENEWING:
        now = client.deadline
        out = client.on_timer(now)
    assert client.state == dhcp.DhcpState.REBINDING and now >= 3.0 + 87.5
    assert sent(out)[0][0] == dhcp.BROADCAST
    client.lease_changed = False
    assert client.input(reply(client, dhcp.ACK), now + 1) == []  # rebound: lease renewed
    assert client.state == dhcp.DhcpState.BOUND and not client.lease_changed
    # silence until the lease runs out: the address is dropped and discovery restarts
    while client.lease is not None:
        out = client.on_timer(client.deadline)
    assert client.lease_changed and sent(out)[0][1] == dhcp.DISCOVER


def test_nak_restarts_and_strangers_are_ignored() -> None:
    client = dhcp.DhcpClient(MAC, lambda n: b"\x07" * n)
    client.start(0.0)
    client.input(reply(client, dhcp.OFFER), 0.1)
    other = bytearray(reply(client, dhcp.ACK))
    other[4:8] = b"\0\0\0\0"  # someone else's transaction
    assert client.input(bytes(other), 0.2) == []
    assert client.state == dhcp.DhcpState.REQUESTING
    [(_, kind, _)] = sent(client.input(reply(client, dhcp.NAK), 0.3))
    assert kind == dhcp.DISCOVER and client.state == dhcp.DhcpState.SELECTING
