"""Command-line options of ``fata bench dns`` and the settings they resolve to."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from . import dnsperf, process
from .peers import PEERS

REPO = Path(__file__).resolve().parents[3]
"""The repository root (this file is ``appliances/dns/bench/options.py``)."""

DEFAULT_SIZES = (100, 1_000, 10_000)
DEFAULT_DURATION = 5.0
DEFAULT_ROUNDS = 3
QUICK_DURATION = 2.0
QUICK_SIZES = (100,)
DEFAULT_CORE = 1
HOST = "127.0.0.1"
DEFAULT_FLOOD_RATE = 20_000.0
FLOOD_SIZE = 1_000
"""Zone size of the flood run's ordinary queries (or the first size asked for, if not this)."""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes must be integers: {text!r}") from exc
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def _peers(text: str) -> list[str]:
    names = [name.lower() for name in _csv(text)]
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}"
        )
    return list(dict.fromkeys(names))


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fata bench dns",
        description="Benchmark the Fata DNS appliance against BIND9, NSD and Knot.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"one zone size ({QUICK_SIZES[0]}), {QUICK_DURATION:g} s per server",
    )
    p.add_argument(
        "--against",
        type=_peers,
        default=list(PEERS),
        help="comma-separated competitors: bind,nsd,knot (default: all; '' for none)",
    )
    p.add_argument("--sizes", type=_sizes, help="zone sizes in names (default 100,1000,10000)")
    p.add_argument(
        "--duration", type=_positive, help=f"seconds of load per run (default {DEFAULT_DURATION:g})"
    )
    p.add_argument(
        "--rounds",
        type=int,
        help=f"runs per server and size, interleaved; the median counts (default {DEFAULT_ROUNDS}"
        ", 1 with --quick)",
    )
    p.add_argument("--out", type=Path, help="output directory (default bench-results/dns/)")
    p.add_argument(
        "--core", type=int, default=DEFAULT_CORE, help="core for the servers (dnsperf: another)"
    )
    p.add_argument(
        "--fata",
        type=Path,
        help="appliance directory or image for `fata run` (default appliances/dns)",
    )
    p.add_argument(
        "--no-install", action="store_true", help="never apt-get install missing servers"
    )
    p.add_argument(
        "--server-cpu",
        type=float,
        default=None,
        metavar="PERCENT",
        help="cap every server at this share of its core (a cgroup CPU limit), so that the "
        "servers and not dnsperf are the bottleneck (default: no cap)",
    )
    p.add_argument(
        "--flood-rate",
        type=float,
        default=DEFAULT_FLOOD_RATE,
        metavar="QPS",
        help="the spoofed flood's queries per second, sent beside dnsperf once per server "
        f"with response rate limiting on (default {DEFAULT_FLOOD_RATE:,.0f}; 0: no flood run)",
    )
    return p


@dataclass
class Settings:
    """The resolved options of one run."""

    sizes: list[int]
    duration: float
    rounds: int
    out: Path
    core: int
    load_core: int
    peers: list[str]
    quick: bool
    install: bool
    fata: Path | None
    sample_size: int
    server_cpu: float | None = None
    flood_rate: float = 0.0
    """Queries per second of the spoofed flood; 0 skips the flood run."""

    @property
    def flood_size(self) -> int:
        """The zone size the flood run's ordinary queries use."""
        return FLOOD_SIZE if FLOOD_SIZE in self.sizes else self.sizes[0]

    @property
    def outstanding(self) -> int:
        """dnsperf's queries in flight for this run."""
        return dnsperf.OUTSTANDING if self.server_cpu is None else dnsperf.OUTSTANDING_CAPPED


def settings(args: argparse.Namespace) -> Settings:
    process.check_core(args.core)
    rounds = args.rounds or (1 if args.quick else DEFAULT_ROUNDS)
    if rounds < 1:
        raise ValueError("--rounds must be at least 1")
    if args.server_cpu is not None and not 1 <= args.server_cpu <= 100:
        raise ValueError("--server-cpu is a percentage of one core: 1..100")
    if args.flood_rate < 0:
        raise ValueError("--flood-rate must be 0 (no flood run) or positive")
    return Settings(
        sizes=args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES),
        duration=args.duration or (QUICK_DURATION if args.quick else DEFAULT_DURATION),
        rounds=rounds,
        out=(args.out or REPO / "bench-results" / "dns").resolve(),
        core=args.core,
        load_core=process.other_cores(args.core)[0],
        peers=args.against,
        quick=args.quick,
        install=not args.no_install,
        fata=args.fata.resolve() if args.fata else None,
        sample_size=40 if args.quick else 200,
        server_cpu=args.server_cpu,
        flood_rate=args.flood_rate,
    )
