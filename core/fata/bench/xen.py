"""``fata bench xen``: the Xen platform's network path against the direct TAP path, in the
same run on the same machine.

The same DNS appliance, built twice: ``--target unix --net direct`` (Fata's TCP/IP on a
TAP it opens itself) and ``--target xen`` (Fata's TCP/IP on netfront, the TAP owned by
netback in another process, every frame through the shared rings and event channels).
Both run inside a network namespace made for the run; dnsperf in that namespace loads each
in turn, rounds interleaved, and the median counts: queries per second is packets per
second each way, a small-packet figure.  For bulk bytes, the www appliance built the same
two ways serves one file that curl fetches over and over: Mbit/s.  The target from the
issue: the netfront path at least 0.8x the direct TAP path.  Needs root.

``--quick``: one round of 2 s, DNS only, so the test suite proves the harness works.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fata.bench.report import Column, Target, print_table, ratio, write_json

REPO = Path(__file__).resolve().parents[3]
NS = "fatabx"
DIRECT = "10.77.0.2"
QUERIES = ["example.org SOA", "www.example.org A", "example.org NS", "missing.example.org A"]
FILE_BYTES = 8 << 20


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
    rows, targets = [], []
    for measure in sorted({m for m, _ in results}):
        direct = statistics.median(results[(measure, "direct TAP")])
        front = statistics.median(results[(measure, "netfront")])
        share = ratio(front, direct)
        rows.append({"measure": measure, "direct": direct, "netfront": front, "ratio": share})
        targets.append(Target(f"{measure}: netfront / direct TAP", share, 0.8, ">="))
    print_table(rows, [Column("measure", "Measure", "{}"), Column("direct", "Direct TAP", "{:,.0f}"),
                       Column("netfront", "Netfront", "{:,.0f}"),
                       Column("ratio", "Netfront/direct", "{:.2f}x")],
                f"Xen network path, median of {args.rounds} round(s) of {args.duration:g} s")
    for target in targets:
        print(target.describe())
    write_json(Path(args.out) / "xen-bench.json",
               {"rows": rows, "targets": [t.as_dict() for t in targets],
                "rounds": args.rounds, "duration": args.duration})
    return 0


if __name__ == "__main__":
    sys.exit(main())
