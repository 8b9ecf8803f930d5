"""Helpers shared by the DNS tests (a module, not a conftest, so tests can import it)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
from appliance_util import (  # noqa: F401 -- re-exported for the tests
    APPLIANCE_STACKS,
    DIRECT_HOST,
    PYTHON,
    ROOT,
    LoggedProcess,
    free_port,
    network_namespace,
    rss_kb,
    wait_until,
)

APPLIANCE = ROOT / "appliances" / "dns"
EXAMPLE_ZONE = APPLIANCE / "data" / "example.zone"

# The child zone of example.org's delegation, served alongside to test closest-enclosing
# zone selection and DS-from-parent.
LAB_ZONE = """$ORIGIN lab.example.org.
$TTL 600
@     SOA ns1 hostmaster 7 3600 600 86400 60
      NS  ns1
      NS  ns2
ns1   A   192.0.2.201
ns2   AAAA 2001:db8::202
host  A   192.0.2.210
"""

OTHER_ZONE = """$ORIGIN example.net.
$TTL 300
@     SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 120
      NS  ns1.example.org.
target A  203.0.113.7
loop1 CNAME loop2
loop2 CNAME loop1
jump  CNAME www.example.org.
"""


def make_server(axfr_allow: tuple[str, ...] = ("127.0.0.1/32",)):
    """An engine over example.org (baked zone), lab.example.org and example.net."""
    from fata_dns.lookup import Catalog
    from fata_dns.server import Server
    from fata_dns.zone import load_zone_text

    zones = [
        load_zone_text(str(EXAMPLE_ZONE), EXAMPLE_ZONE.read_text()),
        load_zone_text("lab.zone", LAB_ZONE),
        load_zone_text("net.zone", OTHER_ZONE),
    ]
    return Server(Catalog(zones), axfr_allow=axfr_allow)


def ask(server, name: str, rdtype: str = "A", *, edns: int | None = 0, payload: int = 1232,
        do: bool = False, tcp: bool = False, flags: int | None = None) -> dns.message.Message:
    """Query the engine directly (sans-IO) and parse the reply with dnspython."""
    q = dns.message.make_query(name, rdtype, use_edns=edns if edns is not None else False,
                               payload=payload, want_dnssec=do)
    if flags is not None:
        q.flags = flags
    wire = q.to_wire()
    if tcp:
        replies = server.handle_tcp(wire, ("127.0.0.1", 5000))
        assert len(replies) == 1
        reply = replies[0]
    else:
        reply = server.handle_udp(wire, ("127.0.0.1", 5000))
    assert reply is not None
    assert reply[:2] == wire[:2]
    return dns.message.from_wire(reply)


def rrs(section) -> set[str]:
    """A section as a set of presentation lines with lowercase owners, for comparison."""
    out = set()
    for rrset in section:
        for rd in rrset:
            out.add(f"{rrset.name.to_text().lower()} {rrset.ttl} "
                    f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}")
    return out


def wait_answer(port: int, name: str, proc: subprocess.Popen | None = None,
                timeout: float = 60.0, host: str = "127.0.0.1") -> float:
    """Poll with dnspython until the server on ``port`` answers; return the seconds taken."""
    start = time.monotonic()
    q = dns.message.make_query(name, "SOA")
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            dns.query.udp(q, host, port=port, timeout=0.2)
            return time.monotonic() - start
        except (dns.exception.Timeout, ConnectionRefusedError, OSError):
            pass
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"nothing answered on port {port} within {timeout}s")
        time.sleep(0.05)


class RunningAppliance(LoggedProcess):
    """``python -m fata run appliances/dns [--net NET] -- ARGS`` as a subprocess.

    ``host`` is where it answers: 127.0.0.1 on host sockets; with ``net="direct"`` the
    default TAP's appliance side, so the caller runs it inside a network namespace of its
    own (``network_namespace``)."""

    def __init__(self, args: list[str], tmp: Path, port: int | None = None, *,
                 net: str = "socket", runtime_args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.net = net
        self.host = DIRECT_HOST if net == "direct" else "127.0.0.1"
        self.log = tmp / f"appliance-{self.port}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "core"), str(APPLIANCE), env.get("PYTHONPATH", "")])
        python = str(PYTHON) if PYTHON.exists() else sys.executable
        self.proc = subprocess.Popen(
            [python, "-m", "fata", "run", str(APPLIANCE), "--net", net, *runtime_args, "--",
             "--listen", self.host, "--port", str(self.port), *args],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))

    def wait(self, name: str = "example.org.", timeout: float = 90.0) -> float:
        return wait_answer(self.port, name, self.proc, timeout, self.host)


def query(port: int, name: str, rdtype: str = "A", *, tcp: bool = False, use_edns=0,
          payload: int = 1232, rd: bool = False, timeout: float = 2.0,
          host: str = "127.0.0.1") -> dns.message.Message:
    """Ask a real server on ``host:port`` with dnspython."""
    q = dns.message.make_query(name, rdtype, use_edns=use_edns, payload=payload)
    if not rd:
        q.flags &= ~dns.flags.RD
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=timeout)
    return dns.query.udp(q, host, port=port, timeout=timeout, ignore_trailing=False)


def ip_cmd(*cmd: str) -> None:
    """``ip CMD`` (iproute2), failing the test if it fails."""
    subprocess.run(["ip", *cmd], check=True, capture_output=True)


@contextlib.contextmanager
def appliance_on(net: str, args: list[str], tmp: Path, *,
                 host_addresses: tuple[str, ...] = ()) -> Iterator[RunningAppliance]:
    """The appliance running on stack ``net`` until the block ends: on host sockets, or on
    Fata's own stack with its default TAP in a network namespace made here and joined by
    this thread for the duration (``host_addresses`` are added to the TAP's host side)."""
    with contextlib.ExitStack() as stack:
        if net == "direct":
            ns = f"fatadns{os.getpid() % 100000}x{len(tmp.name)}"
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            ip_cmd("netns", "add", ns)
            stack.callback(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
            ip_cmd("-n", ns, "link", "set", "lo", "up")
            stack.enter_context(network_namespace(ns))
        a = RunningAppliance(args, tmp, net=net)
        stack.callback(a.stop)
        a.wait()
        for address in host_addresses if net == "direct" else ():
            ip_cmd("addr", "add", f"{address}/24", "dev", "fata0")
        yield a


def recv_exact(s: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a stream socket; ``ConnectionError`` if it closes first."""
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_tcp(s: socket.socket) -> dns.message.Message:
    """One length-framed DNS message from a TCP connection (RFC 1035 4.2.2)."""
    head = recv_exact(s, 2)
    return dns.message.from_wire(recv_exact(s, int.from_bytes(head, "big")))


