"""DHCPv4 client (RFC 2131/2132), sans-IO: discover, offer, request, ack, renew, rebind.

The client returns ``(destination, payload)`` pairs for the stack to send from UDP port 68
(source 0.0.0.0 until an address is bound), is fed the payloads arriving on port 68, and
exposes ``lease`` once bound.  Retransmissions back off exponentially (RFC 2131 §4.1);
renewal starts at T1 (unicast to the server), rebinding at T2 (broadcast), and the lease is
dropped when it expires.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

from fata.net.errors import ParseError

CLIENT_PORT = 68
SERVER_PORT = 67
MAGIC = b"\x63\x82\x53\x63"
FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
FIXED_LEN = 236
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE = 1, 2, 3, 4, 5, 6, 7
OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME = 1, 3, 6, 12
OPT_REQUESTED_IP, OPT_LEASE, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 53, 54
OPT_PARAMS, OPT_T1, OPT_T2, OPT_CLIENT_ID, OPT_END, OPT_PAD = 55, 58, 59, 61, 255, 0
BROADCAST = b"\xff\xff\xff\xff"
ZERO = b"\0\0\0\0"


class DhcpState(enum.Enum):
    """RFC 2131 figure 5 client states."""

    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"


@dataclass
class Lease:
    """What the server granted."""

    address: bytes
    prefix_len: int
    router: bytes | None
    dns: list[bytes]
    server: bytes
    lease_time: float
    t1: float
    t2: float
    obtained: float


@dataclass
class DhcpMessage:
    """The parts of a server message the client uses."""

    op: int
    xid: int
    yiaddr: bytes
    chaddr: bytes
    options: dict[int, bytes]

    @property
    def msg_type(self) -> int | None:
        """Option 53."""
        value = self.options.get(OPT_MSG_TYPE)
        return value[0] if value else None


def parse(payload: bytes | memoryview) -> DhcpMessage:
    """Parse a BOOTP/DHCP message; raises ``ParseError``."""
    if len(payload) < FIXED_LEN + 4:
        raise ParseError("dhcp_short")
    (op, htype, hlen, _hops, xid, _secs, _flags, _ciaddr, yiaddr, _siaddr, _giaddr, chaddr,
     _sname, _file) = FIXED.unpack_from(payload)
    if htype != 1 or hlen != 6:
        raise ParseError("dhcp_not_ethernet")
    if bytes(payload[FIXED_LEN:FIXED_LEN + 4]) != MAGIC:
        raise ParseError("dhcp_no_cookie")
    options: dict[int, bytes] = {}
    i = FIXED_LEN + 4
    n = len(payload)
    while i < n:
        code = payload[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= n or i + 2 + payload[i + 1] > n:
            raise ParseError("dhcp_bad_option")
        length = payload[i + 1]
        options[code] = options.get(code, b"") + bytes(payload[i + 2:i + 2 + length])
        i += 2 + length
    return DhcpMessage(op, xid, bytes(yiaddr), bytes(chaddr[:6]), options)


def build(msg_type: int, xid: int, mac: bytes, *, ciaddr: bytes = ZERO, secs: int = 0,
          options: list[tuple[int, bytes]] | None = None) -> bytes:
    """A client message (BOOTREQUEST) with the broadcast flag set."""
    fixed = FIXED.pack(1, 1, 6, 0, xid, min(secs, 0xFFFF), 0x8000, ciaddr, ZERO, ZERO, ZERO,
                       mac.ljust(16, b"\0"), b"", b"")
    out = bytearray(fixed + MAGIC)
    out += bytes([OPT_MSG_TYPE, 1, msg_type])
    for code, value in options or []:
        out += bytes([code, len(value)]) + value
    out.append(OPT_END)
    if len(out) < 300:  # some servers ignore BOOTP messages shorter than 300 bytes
        out += b"\0" * (300 - len(out))
    return bytes(out)


class DhcpClient:
    """One interface's DHCP client."""

    def __init__(self, mac: bytes, rand: Callable[[int], bytes], *, hostname: str | None = None,
                 initial_timeout: float = 2.0, max_timeout: float = 32.0) -> None:
        self.mac = mac
        self.rand = rand
        self.hostname = hostname
        self.initial_timeout = initial_timeout
        self.max_timeout = max_timeout
        self.state = DhcpState.INIT
        self.lease: Lease | None = None
        self.offer: DhcpMessage | None = None
        self.xid = 0
        self.started = 0.0
        self.timeout = initial_timeout
        self.deadline: float | None = None
        self.counters: dict[str, int] = {}
        self.lease_changed = False

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _common(self) -> list[tuple[int, bytes]]:
        opts = [(OPT_CLIENT_ID, b"\x01" + self.mac),
                (OPT_PARAMS, bytes([OPT_SUBNET, OPT_ROUTER, OPT_DNS, OPT_LEASE, OPT_T1, OPT_T2]))]
        if self.hostname:
            opts.append((OPT_HOSTNAME, self.hostname.encode()[:63]))
        return opts

    def _secs(self, now: float) -> int:
        return int(now - self.started)

    def start(self, now: float) -> list[tuple[bytes, bytes]]:
        """Begin (or restart) from INIT: broadcast a DISCOVER."""
        self.state = DhcpState.SELECTING
        self.xid = int.from_bytes(self.rand(4), "big")
        self.started = now
        self.timeout = self.initial_timeout
        self.offer = None
        return self._send_discover(now)

    def _send_discover(self, now: float) -> list[tuple[bytes, bytes]]:
        self.deadline = now + self.timeout
        self._count("discovers")
        return [(BROADCAST, build(DISCOVER, self.xid, self.mac, secs=self._secs(now),
                                  options=self._common()))]

    def _send_request(self, now: float) -> list[tuple[bytes, bytes]]:
        self._count("requests")
        if self.state == DhcpState.REQUESTING:
            assert self.offer is not None
            opts = [(OPT_REQUESTED_IP, self.offer.yiaddr),
                    (OPT_SERVER_ID, self.offer.options.get(OPT_SERVER_ID, ZERO)),
                    *self._common()]
            self.deadline = now + self.timeout
            return [(BROADCAST, build(REQUEST, self.xid, self.mac, secs=self._secs(now),
                                      options=opts))]
        lease = self.lease
        assert lease is not None
        end = lease.obtained + (lease.t2 if self.state == DhcpState.RENEWING
                                else lease.lease_time)
        self.deadline = min(end, now + max(60.0, (end - now) / 2))
        dst = lease.server if self.state == DhcpState.RENEWING else BROADCAST
        return [(dst, build(REQUEST, self.xid, self.mac, ciaddr=lease.address,
                            secs=self._secs(now), options=self._common()))]

    def input(self, payload: bytes | memoryview, now: float) -> list[tuple[bytes, bytes]]:
        """Handle a message that arrived on port 68."""
        msg = parse(payload)
        if msg.op != 2 or msg.xid != self.xid or msg.chaddr != self.mac:
            self._count("not_ours")
            return []
        kind = msg.msg_type
        if self.state == DhcpState.SELECTING and kind == OFFER:
            if msg.yiaddr == ZERO or OPT_SERVER_ID not in msg.options:
                self._count("bad_offers")
                return []
            self.offer = msg
            self.state = DhcpState.REQUESTING
            self.timeout = self.initial_timeout
            return self._send_request(now)
        if self.state in (DhcpState.REQUESTING, DhcpState.RENEWING, DhcpState.REBINDING):
            if kind == ACK:
                self._bind(msg, now)
                return []
            if kind == NAK:
                self._count("naks")
                if self.lease is not None:
                    self.lease = None
                    self.lease_changed = True
                return self.start(now)
        self._count("ignored")
        return []

    def _bind(self, msg: DhcpMessage, now: float) -> None:
        opts = msg.options
        mask = opts.get(OPT_SUBNET)
        prefix = bin(int.from_bytes(mask, "big")).count("1") if mask and len(mask) == 4 else 24
        lease_time = float(int.from_bytes(opts[OPT_LEASE], "big")) \
            if len(opts.get(OPT_LEASE, b"")) == 4 else 3600.0
        t1 = float(int.from_bytes(opts[OPT_T1], "big")) if len(opts.get(OPT_T1, b"")) == 4 \
            else lease_time * 0.5
        t2 = float(int.from_bytes(opts[OPT_T2], "big")) if len(opts.get(OPT_T2, b"")) == 4 \
            else lease_time * 0.875
        router = opts.get(OPT_ROUTER)
        dns = opts.get(OPT_DNS, b"")
        server = opts.get(OPT_SERVER_ID) or (self.lease.server if self.lease else ZERO)
        new = Lease(msg.yiaddr, prefix, router[:4] if router and len(router) >= 4 else None,
                    [dns[i:i + 4] for i in range(0, len(dns) - 3, 4)], server[:4], lease_time,
                    t1, t2, now)
        old = self.lease
        self.lease_changed = old is None or (old.address, old.prefix_len, old.router) != \
            (new.address, new.prefix_len, new.router)
        self.lease = new
        self.state = DhcpState.BOUND
        self.deadline = now + t1
        self._count("acks")

    def on_timer(self, now: float) -> list[tuple[bytes, bytes]]:
        """Retransmit, renew, rebind or expire as time requires."""
        if self.deadline is None or now < self.deadline:
            return []
        state = self.state
        if state == DhcpState.SELECTING:
            self.timeout = min(self.timeout * 2, self.max_timeout)
            return self._send_discover(now)
        if state == DhcpState.REQUESTING:
            self.timeout = min(self.timeout * 2, self.max_timeout)
            if self.timeout >= self.max_timeout:
                return self.start(now)
            return self._send_request(now)
        lease = self.lease
        if lease is None:
            return self.start(now)
        age = now - lease.obtained
        if age >= lease.lease_time:
            self._count("expired")
            self.lease = None
            self.lease_changed = True
            return self.start(now)
        self.xid = int.from_bytes(self.rand(4), "big") if state == DhcpState.BOUND else self.xid
        self.state = DhcpState.REBINDING if age >= lease.t2 else DhcpState.RENEWING
        return self._send_request(now)

    def next_deadline(self) -> float | None:
        """When ``on_timer`` has something to do."""
        return self.deadline
