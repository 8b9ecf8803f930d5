"""``fata bench xen``: the Xen platform's network path against the direct TAP path, in the
same run on the same machine.

The same DNS appliance, built twice: ``--target unix --net direct`` (Fata's TCP/IP on a
TAP it opens itself) and ``--target xen`` (Fata's TCP/IP on netfront, the TAP owned by
netback in another process, every frame through the shared rings and event channels).
Both run inside a network namespace made for the run; dnsperf in that namespace loads each
in turn, rounds interleaved, and the median counts: queries per second is packets per
second each way, a small-packet figure.  For bulk bytes, the www appliance built the same
two ways serves one file that curl fetches over and over: Mbit/s.  The target from the
issue: the netfront path at least 0.8x the direct TAP path.

Then the block path: the platform (hypervisor, xenstore_stub, blkback) started as ``fata
run`` starts it, a guest domain with one vbd, this process playing the guest on blkfront;
MB/s writing and reading a file in 64 KiB requests at queue depths 1 and 8, against direct
file I/O (``block_file``) on the same file in the same run, rounds alternated, the page
cache warm for both.  Target: at least 0.5x.  Needs root.

``--quick``: one round of 2 s, DNS only, and 16 MiB of block I/O at depth 1, so the test
suite proves the harness works.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fata.bench.report import Column, Target, print_table, ratio, write_json
from fata.devices.block import Block

REPO = Path(__file__).resolve().parents[3]
NS = "fatabx"
DIRECT = "10.77.0.2"
QUERIES = ["example.org SOA", "www.example.org A", "example.org NS", "missing.example.org A"]
FILE_BYTES = 8 << 20
BLOCK_REQUEST = 64 << 10


def _fata(*argv: str, timeout: float = 600) -> str:
    done = subprocess.run([sys.executable, "-m", "fata", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))
    if done.returncode != 0:
        raise RuntimeError(f"fata {' '.join(argv)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


class Server:
    """One appliance image running in the namespace, and where it answers."""

    def __init__(self, image: Path, tmp: Path, args: list[str], xen: bool) -> None:
        self.log = tmp / f"{image.stem}.log"
        extra = ["--xen-dir", str(tmp / "xen")] if xen else []
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS, sys.executable, "-m", "fata", "run", str(image),
             *extra, "--", *args], stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            cwd=str(REPO))
        deadline = time.monotonic() + 120
        while True:
            text = self.log.read_text()
            if "serving" in text:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{image.name} did not start:\n{text[-2000:]}")
            try:
                self.proc.wait(0.1)  # returns early only if it exits
            except subprocess.TimeoutExpired:
                pass
        found = re.search(r"answers on (\d+\.\d+\.\d+\.\d+)", text)
        self.address = found[1] if found else DIRECT

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ns(*argv: str, timeout: float = 120) -> str:
    done = subprocess.run(["ip", "netns", "exec", NS, *argv], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr[-1000:]}")
    return done.stdout


def dns_qps(address: str, queries: Path, seconds: float) -> float:
    out = _ns("dnsperf", "-s", address, "-d", str(queries), "-l", str(seconds), "-c", "8",
              "-q", "64", timeout=seconds + 60)
    found = re.search(r"Queries per second:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"dnsperf said:\n{out}")
    return float(found[1])


def www_mbits(address: str, port: int, seconds: float) -> float:
    """curl fetching the file back to back for ``seconds``: Mbit/s of body."""
    got, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        size = _ns("curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                   f"http://{address}:{port}/big.bin")
        if int(size) != FILE_BYTES:
            raise RuntimeError(f"curl fetched {size} bytes, not {FILE_BYTES}")
        got += FILE_BYTES
    return got * 8 / (time.monotonic() - start) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fata bench xen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one 2 s round, DNS only")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="bench-results/xen", help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2.0, 1
    if os.geteuid() != 0:
        print("fata bench xen needs root (network namespaces, TAP devices)", file=sys.stderr)
        return 1
    missing = [t for t in ("dnsperf", "ip") + (() if args.quick else ("curl",))
               if shutil.which(t) is None]
    if missing:
        print(f"fata bench xen needs {', '.join(missing)}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="fata-bench-xen-") as scratch:
        return _bench(Path(scratch), args)


def _bench(tmp: Path, args: argparse.Namespace) -> int:
    tmp.chmod(0o755)  # the guest (user nobody) reads the site
    images = {}
    for kind, target in (("direct TAP", ["--net", "direct"]), ("netfront", ["--target", "xen"])):
        images[("dns", kind)] = Path(_fata("build", "appliances/dns", *target, "--out",
                                           str(tmp)))
        if not args.quick:
            images[("www", kind)] = Path(_fata("build", "appliances/www", *target, "--out",
                                               str(tmp)))
    queries = tmp / "queries.txt"
    queries.write_text("\n".join(QUERIES * 25) + "\n")
    site = tmp / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(os.urandom(FILE_BYTES))
    (site / "index.html").write_text("<p>bench</p>\n")
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for kind in ("direct TAP", "netfront"):
                xen = kind == "netfront"
                listen = [] if xen else ["--listen", DIRECT]
                server = Server(images[("dns", kind)], tmp, [*listen, "--port", "53"], xen)
                try:
                    results.setdefault(("dns qps", kind), []).append(
                        dns_qps(server.address, queries, args.duration))
                finally:
                    server.stop()
                if args.quick:
                    continue
                server = Server(images[("www", kind)], tmp, [*listen, "--port", "80",
                                                              "--site", str(site)], xen)
                try:
                    results.setdefault(("www Mbit/s", kind), []).append(
                        www_mbits(server.address, 80, args.duration))
                finally:
                    server.stop()
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    block_results = asyncio.run(_block(tmp, args))
    for measure, figures in block_results.items():
        for kind, values in figures.items():
            results.setdefault((measure, kind), []).extend(values)
    rows, targets = [], []
    for measure in sorted({m for m, _ in results}):
        block = measure.startswith("block")
        direct = statistics.median(results[(measure, "file" if block else "direct TAP")])
        front = statistics.median(results[(measure, "blkfront" if block else "netfront")])
        share = ratio(front, direct)
        rows.append({"measure": measure, "direct": direct, "netfront": front, "ratio": share})
        targets.append(Target(f"{measure}: blkfront / direct file I/O", share, 0.5, ">=")
                       if block else
                       Target(f"{measure}: netfront / direct TAP", share, 0.8, ">="))
    print_table(rows, [Column("measure", "Measure", "{}"),
                       Column("direct", "Direct (TAP / file)", "{:,.0f}"),
                       Column("netfront", "Xen (netfront / blkfront)", "{:,.0f}"),
                       Column("ratio", "Xen/direct", "{:.2f}x")],
                f"Xen paths against direct, median of {args.rounds} round(s)")
    for target in targets:
        print(target.describe())
    write_json(Path(args.out) / "xen-bench.json",
               {"rows": rows, "targets": [t.as_dict() for t in targets],
                "rounds": args.rounds, "duration": args.duration})
    return 0


async def throughput(block: Block, total: int, depth: int) -> dict[str, float]:
    """MB/s writing then reading ``total`` bytes in 64 KiB requests, ``depth`` in flight."""
    data = os.urandom(BLOCK_REQUEST)
    sectors, count = BLOCK_REQUEST // 512, total // BLOCK_REQUEST
    out: dict[str, float] = {}
    for kind in ("write", "read"):
        queue = iter(range(count))

        async def worker(kind: str = kind, queue: Iterator[int] = queue) -> None:
            for n in queue:
                if kind == "write":
                    await block.write(n * sectors, data)
                else:
                    await block.read(n * sectors, sectors)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(depth)))
        out[kind] = total / (time.perf_counter() - started) / 1e6
    return out


async def _block(tmp: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """``{"block write qd1": {"file": [...], "blkfront": [...]}, ...}``."""
    from fata.platform.block_file import FileBlock
    from fata.platform.local_unix import UnixLocalSockets
    from fata.platform.unix import UnixConsole
    from fata.platform.xen_blkfront import open_blkfront
    from fata.platform.xen_host import HypervisorClient, xenstore_ring
    from fata.platform.xen_launch import Platform
    from fata.platform.xen_toolstack import add_vbd, build_guest, destroy_guest
    from fata.xen.xs_client import XenstoreClient

    size = (16 if args.quick else 128) << 20
    depths = (1,) if args.quick else (1, 8)
    path = tmp / "disk.img"
    with path.open("wb") as f:
        f.truncate(size)
    platform = Platform(tmp / "xen")
    out: dict[str, dict[str, list[float]]] = {}
    await asyncio.to_thread(platform.start, UnixConsole("bench-xen"))
    try:
        xen = await HypervisorClient.connect(str(platform.hypervisor))
        flow = await UnixLocalSockets(UnixConsole("bench-xen")).connect(str(platform.xenstore))
        async with XenstoreClient(flow) as xs:
            guest = await build_guest(xen, xs, "bench-disk")
            try:
                await add_vbd(xs, guest.domid, 0, str(path))
                own = await HypervisorClient.from_fd(guest.handle.detach())
                async with XenstoreClient(await xenstore_ring(own)) as ring:
                    front = await open_blkfront(0, own, ring, timeout=30)
                    direct = FileBlock.open(str(path))
                    try:
                        await throughput(direct, size, 1)  # the page cache warm for both
                        for _ in range(args.rounds):
                            for depth in depths:
                                for name, dev in (("file", direct), ("blkfront", front)):
                                    for kind, value in (await throughput(dev, size, depth)
                                                        ).items():
                                        out.setdefault(f"block {kind} MB/s qd{depth}", {}
                                                       ).setdefault(name, []).append(value)
                    finally:
                        await front.close()
                        await direct.close()
                await own.close()
            finally:
                await destroy_guest(xen, xs, guest.domid)
        await xen.close()
    finally:
        platform.stop()
    return out


if __name__ == "__main__":
    sys.exit(main())
