"""``fata bench net``: Fata's own TCP/IP on a TAP device, measured beside Linux's.

Two measurements, made in the same run on the same machine:

1. Bulk TCP throughput each way.  A Linux client in a network namespace sends N bytes to,
   and receives N bytes from, (a) Fata's stack on a TAP device and (b) a Linux endpoint in
   a second namespace joined by a veth pair, the reference.  Both servers run the same
   trivial sink/source logic and the client is the same program, so the difference is the
   stack (and the link: TAP with virtio-net offloads for Fata, veth for Linux).
2. DNS queries per second: the DNS appliance on ``--net direct`` (answering on its TAP)
   and on ``--net socket`` (the host kernel's UDP, loopback), loaded by dnsperf.

Targets from the project: >= 1 Gbit/s bulk TCP each way, and DNS on the direct stack at
least 0.5x the socket stack.  Needs root (namespaces, TAP); prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fata.bench.report import Column, Target, print_table, write_json

REPO = Path(__file__).resolve().parents[3]
CHUNK = 1 << 20

CLIENT = r"""
import socket, sys, time
mode, host, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
c = socket.create_connection((host, port), timeout=60)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
if mode == "up":
    block = bytes(1 << 20)
    left = size
    while left:
        left -= c.send(block[:min(left, len(block))])
    c.shutdown(socket.SHUT_WR)
    assert int(c.makefile("rb").read().split()[0]) == size
else:
    c.sendall(f"{size}\n".encode())
    got = 0
    buf = bytearray(1 << 20)
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        got += n
    assert got == size, got
print(size * 8 / (time.perf_counter() - start) / 1e6)
"""

LINUX_SERVER = r"""
import socket, threading
def sink(c):
    n = 0
    buf = bytearray(1 << 20)
    while True:
        k = c.recv_into(buf)
        if not k:
            break
        n += k
    c.sendall(f"{n}\n".encode()); c.close()
def source(c):
    line = b""
    while not line.endswith(b"\n"):
        line += c.recv(100)
    left = int(line)
    block = bytes(1 << 20)
    while left:
        left -= c.send(block[:min(left, len(block))])
    c.close()
def serve(port, fn):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(9000, sink), daemon=True).start()
print("ready", flush=True)
serve(9001, source)
"""

QUERIES = ["www.example.org A", "example.org SOA", "example.org MX", "mail.example.org A",
           "example.org NS", "nonexistent.example.org A", "example.org TXT",
           "ns1.example.org A"]


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _ns_exec(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def _pin(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core)]
    return []


class Namespaces:
    """``client`` (Linux peer), ``ref`` (Linux reference endpoint) joined by a veth."""

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.client = f"fbench{tag}c"
        self.ref = f"fbench{tag}r"

    def __enter__(self) -> Namespaces:
        self.__exit__()
        for ns in (self.client, self.ref):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", self.client, "link", "add", "vc", "type", "veth", "peer", "name", "vr",
            "netns", self.ref)
        _sh("ip", "-n", self.client, "addr", "add", "10.79.0.1/24", "dev", "vc")
        _sh("ip", "-n", self.ref, "addr", "add", "10.79.0.2/24", "dev", "vr")
        _sh("ip", "-n", self.client, "link", "set", "vc", "up")
        _sh("ip", "-n", self.ref, "link", "set", "vr", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.client, self.ref):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


async def _client(ns: str, mode: str, host: str, port: int, size: int) -> float:
    proc = await asyncio.create_subprocess_exec(
        *_ns_exec(ns, *_pin(1), sys.executable, "-c", CLIENT, mode, host, str(port), str(size)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode != 0:
        raise RuntimeError(f"client {mode} to {host} failed: {err.decode()[-300:]}")
    return float(out)


async def _fata_tcp(ns: Namespaces, size: int, rounds: int) -> dict[str, float]:
    from fata.devices import Flow
    from fata.net.ipv4 import Ipv4Config
    from fata.net.stack import DirectStack
    from fata.platform.tap import TapNetif

    async def sink(flow: Flow) -> None:
        n = 0
        while True:
            data = await flow.read(1 << 20)
            if not data:
                break
            n += len(data)
        await flow.write(f"{n}\n".encode())

    async def source(flow: Flow) -> None:
        line = b""
        while not line.endswith(b"\n"):
            line += await flow.read()
        left = int(line)
        block = bytes(CHUNK)
        while left > 0:
            await flow.write(block[:min(left, CHUNK)])
            left -= CHUNK

    name = f"fbtap{os.getpid() % 10000}"
    netif = TapNetif.open(name)
    _sh("ip", "link", "set", name, "netns", ns.client)
    _sh("ip", "-n", ns.client, "addr", "add", "10.78.0.1/24", "dev", name)
    _sh("ip", "-n", ns.client, "link", "set", name, "up")
    stack = DirectStack(netif, Ipv4Config.from_text("10.78.0.2/24"))
    stack.start()
    try:
        await stack.tcp_listen("0.0.0.0", 9000, sink)
        await stack.tcp_listen("0.0.0.0", 9001, source)
        ups = [await _client(ns.client, "up", "10.78.0.2", 9000, size) for _ in range(rounds)]
        downs = [await _client(ns.client, "down", "10.78.0.2", 9001, size)
                 for _ in range(rounds)]
    finally:
        await stack.close()
    return {"up": sorted(ups)[len(ups) // 2], "down": sorted(downs)[len(downs) // 2]}


async def _linux_tcp(ns: Namespaces, size: int, rounds: int) -> dict[str, float]:
    server = await asyncio.create_subprocess_exec(
        *_ns_exec(ns.ref, *_pin(0), sys.executable, "-c", LINUX_SERVER),
        stdout=asyncio.subprocess.PIPE)
    assert server.stdout is not None
    try:
        await asyncio.wait_for(server.stdout.readline(), 30)
        ups = [await _client(ns.client, "up", "10.79.0.2", 9000, size) for _ in range(rounds)]
        downs = [await _client(ns.client, "down", "10.79.0.2", 9001, size)
                 for _ in range(rounds)]
    finally:
        server.kill()
        await server.wait()
    return {"up": sorted(ups)[len(ups) // 2], "down": sorted(downs)[len(downs) // 2]}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "core"), str(REPO / "appliances" / "dns")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def _dns_qps(ns: str, net: str, seconds: float, qfile: Path, udp_io: str = "auto") -> float | None:
    """Start the DNS appliance on ``net`` inside ``ns``, load it with dnsperf, stop it.

    ``udp_io`` picks the socket platform's system calls (``plain``: one recvfrom/sendto per
    datagram, as the direct stack does one read/write per frame on its TAP)."""
    if net == "direct":
        platform = ["--netif", f"fbdns{os.getpid() % 10000}", "--ipv4", "10.80.0.2/24",
                    "--host-ipv4", "10.80.0.1/24"]
        addr, port = "10.80.0.2", "53"
    else:
        platform, addr, port = ["--udp-io", udp_io], "127.0.0.1", "5353"
    cmd = _ns_exec(ns, *_pin(0), sys.executable, "-m", "fata", "run",
                   str(REPO / "appliances" / "dns"), "--net", net, *platform, "--",
                   "--listen", addr, "--port", port)
    app = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert app.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = app.stderr.readline()
            if not line:
                return None
            if "serving" in line:
                break
        perf = subprocess.run(
            _ns_exec(ns, *_pin(1), "dnsperf", "-s", addr, "-p", port, "-d", str(qfile),
                     "-l", str(seconds), "-c", "4", "-q", "200"),
            capture_output=True, text=True, timeout=seconds + 60)
        match = re.search(r"Queries per second:\s+([\d.]+)", perf.stdout)
        return float(match.group(1)) if match else None
    finally:
        app.terminate()
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()


def main(argv: list[str]) -> int:
    """Run the benchmark; returns 0 when everything could be measured."""
    parser = argparse.ArgumentParser(prog="fata bench net", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller transfers, shorter runs")
    parser.add_argument("--bytes", type=int, default=None, help="bytes per TCP transfer")
    parser.add_argument("--rounds", type=int, default=None, help="repetitions (median kept)")
    parser.add_argument("--dns-seconds", type=float, default=None, help="dnsperf duration")
    parser.add_argument("--only", choices=["tcp", "dns"], default=None,
                        help="run one of the two measurements")
    parser.add_argument("--out", default=str(REPO / "bench-results" / "net"),
                        help="directory for net.json")
    opts = parser.parse_args(argv)
    size = opts.bytes or (50 << 20 if opts.quick else 200 << 20)
    rounds = opts.rounds or (1 if opts.quick else 3)
    seconds = opts.dns_seconds or (3.0 if opts.quick else 10.0)
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("fata bench net needs root and /dev/net/tun (namespaces and a TAP device)")
        return 1
    missing = [tool for tool in ("ip", "dnsperf") if shutil.which(tool) is None]
    if missing:
        print(f"fata bench net needs {', '.join(missing)}")
        return 1

    fata: dict[str, float | None] = {"up": None, "down": None}
    linux: dict[str, float | None] = {"up": None, "down": None}
    direct_qps = socket_qps = plain_qps = None
    with Namespaces() as ns:
        if opts.only != "dns":
            fata.update(asyncio.run(_fata_tcp(ns, size, rounds)))
            linux.update(asyncio.run(_linux_tcp(ns, size, rounds)))
        if opts.only != "tcp":
            with tempfile.TemporaryDirectory() as tmp:
                qfile = Path(tmp) / "queries.txt"
                qfile.write_text("\n".join(QUERIES * 50) + "\n")
                direct_qps = _dns_qps(ns.client, "direct", seconds, qfile)
                socket_qps = _dns_qps(ns.client, "socket", seconds, qfile)
                plain_qps = _dns_qps(ns.client, "socket", seconds, qfile, "plain")

    rows: list[dict[str, Any]] = [
        {"test": "TCP bulk, peer -> appliance", "fata": fata["up"], "linux": linux["up"],
         "unit": "Mbit/s"},
        {"test": "TCP bulk, appliance -> peer", "fata": fata["down"], "linux": linux["down"],
         "unit": "Mbit/s"},
        {"test": "DNS (direct vs socket stack)", "fata": direct_qps, "linux": socket_qps,
         "unit": "queries/s"},
        {"test": "DNS (direct vs socket, --udp-io plain)", "fata": direct_qps,
         "linux": plain_qps, "unit": "queries/s"},
    ]
    for row in rows:
        row["ratio"] = row["fata"] / row["linux"] if row["fata"] and row["linux"] else None
    columns = [Column("test", "measurement", align="left"),
               Column("fata", "Fata direct stack", "{:,.0f}"),
               Column("linux", "reference (Linux / socket)", "{:,.0f}"),
               Column("ratio", "ratio", "{:.2f}x"), Column("unit", "unit", align="left")]
    print_table(rows, columns, title=f"fata bench net ({size >> 20} MB transfers, "
                                     f"{rounds} round(s), dnsperf {seconds:g} s)")
    targets = [Target("TCP up >= 1 Gbit/s", fata["up"], 1000.0, ">=", " Mbit/s"),
               Target("TCP down >= 1 Gbit/s", fata["down"], 1000.0, ">=", " Mbit/s"),
               Target("DNS direct/socket >= 0.5", rows[2]["ratio"], 0.5, ">=")]
    for target in targets:
        print(target.describe())
    path = write_json(Path(opts.out) / "net.json", {
        "bytes": size, "rounds": rounds, "dns_seconds": seconds, "rows": rows,
        "targets": [t.as_dict() for t in targets],
        "notes": "Fata: DirectStack on a TAP with virtio-net offloads; Linux reference: "
                 "kernel TCP across a veth pair; DNS socket: loopback in the same namespace, "
                 "batched recvmmsg/sendmmsg, and with --udp-io plain one recvfrom/sendto each",
    })
    print(f"wrote {path}")
    measured = [fata["up"], fata["down"]] if opts.only != "dns" else []
    if opts.only != "tcp":
        measured += [direct_qps, socket_qps, plain_qps]
    return 0 if all(v is not None for v in measured) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
