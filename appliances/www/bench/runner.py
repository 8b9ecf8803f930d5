"""The benchmark run: options, the interleaved rounds, the table and the JSON record."""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fata.bench import report

from . import check, servers, site, wrk
from .servers import process

DEFAULT_OUT = Path("bench-results") / "www"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _BadOptions(message)


class _BadOptions(Exception):
    pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="fata bench www", description="Fata www against nginx, requests/s.")
    p.add_argument("--quick", action="store_true",
                   help="one round of 2 s, the 1 KB file only")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per file")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (-c)")
    p.add_argument("--against", default="nginx", choices=["nginx", "none"],
                   help="the peer to compare with")
    p.add_argument("--core", type=int, default=None,
                   help="CPU for the server (wrk gets another); default the first allowed")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the record goes")
    p.add_argument("--start-timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.sizes = 1, 2.0, (site.SIZES[0],)
    else:
        args.sizes = site.SIZES
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        raise _BadOptions("--rounds, --duration and --connections must be positive")
    return args


@dataclass
class Row:
    """One server at one file size, over all rounds."""

    server: str
    name: str
    size: int
    size_label: str
    rounds_rps: list[float] = field(default_factory=list)
    requests_per_s: float | None = None
    transfer_mb_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    fata_ratio: float | None = None
    correct: bool | None = None
    status: str = "ok"
    problems: list[str] = field(default_factory=list)
    _transfer: list[float] = field(default_factory=list, repr=False)
    _p50: list[float] = field(default_factory=list, repr=False)
    _p99: list[float] = field(default_factory=list, repr=False)

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _one_server(key: str, args: argparse.Namespace, files: list[site.SiteFile], site_dir: Path,
                work: Path, load_core: int, rows: dict[tuple[str, int], Row]) -> None:
    """Start ``key``, check it, run wrk at every size, stop it; results go into ``rows``."""
    port = process.free_port()
    spec = (servers.fata(site_dir, port) if key == "fata"
            else servers.nginx(site_dir, port, work))
    mine = [rows[(key, f.size)] for f in files]
    if spec.argv is None:
        for row in mine:
            row.status = spec.missing or "not available"
        return
    running = process.start(key, spec.argv, core=args.core, log_path=work / f"{key}.log",
                            env=spec.env)
    try:
        try:
            process.wait_ready(running, lambda: check.answers("127.0.0.1", port),
                               args.start_timeout)
        except process.StartError as exc:
            for row in mine:
                row.status, row.correct = "did not start", False
                row.problems.append(str(exc))
            return
        process.repin(running.pid, args.core)
        problems = check.check_files("127.0.0.1", port, files)
        if problems:
            for row in mine:
                row.status, row.correct = "wrong answers", False
                row.problems.extend(problems)
            return
        for f, row in zip(files, mine, strict=True):
            argv = process.pinned(
                wrk.command(f"http://127.0.0.1:{port}{f.path}", duration=args.duration,
                            connections=args.connections), load_core)
            result = wrk.run(argv, timeout=args.duration + 30)
            if not result.ok:
                row.correct, row.status = False, "wrong answers"
                row.problems.extend(result.problems)
                continue
            assert result.requests_per_s is not None
            row.rounds_rps.append(result.requests_per_s)
            if result.transfer_per_s is not None:
                row._transfer.append(result.transfer_per_s / 1e6)
            if "50%" in result.latency_ms:
                row._p50.append(result.latency_ms["50%"])
            if "99%" in result.latency_ms:
                row._p99.append(result.latency_ms["99%"])
            if row.correct is None:
                row.correct = True
    finally:
        process.stop(running)


def _finish(rows: list[Row]) -> None:
    for row in rows:
        row.requests_per_s = _median(row.rounds_rps)
        row.transfer_mb_s = _median(row._transfer)
        row.p50_ms = _median(row._p50)
        row.p99_ms = _median(row._p99)
    fata = {r.size: r for r in rows if r.server == "fata"}
    for row in rows:
        if row.server != "fata" and row.size in fata:
            row.fata_ratio = report.ratio(fata[row.size].requests_per_s, row.requests_per_s)


COLUMNS = [
    report.Column("name", "Server", align="left"),
    report.Column("size_label", "File"),
    report.Column("requests_per_s", "Requests/s", "{:,.0f}"),
    report.Column("transfer_mb_s", "MB/s", "{:,.1f}"),
    report.Column("p50_ms", "p50 ms", "{:.2f}"),
    report.Column("p99_ms", "p99 ms", "{:.2f}"),
    report.Column("fata_ratio", "Fata/nginx", "{:.2f}x"),
    report.Column("correct", "Correct", lambda v: "yes" if v else "NO"),
    report.Column("status", "Status", align="left"),
]


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except _BadOptions as exc:
        print(f"fata bench www: {exc}", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("fata bench www: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    if shutil.which("taskset") is None:
        print("fata bench www: taskset is not installed (util-linux)", file=sys.stderr)
        return 1
    if args.core is None:
        args.core = min(process.os.sched_getaffinity(0))
    try:
        process.check_core(args.core)
    except ValueError as exc:
        print(f"fata bench www: {exc}", file=sys.stderr)
        return 2
    load_core = process.other_cores(args.core)[0]
    keys = ["fata"] + (["nginx"] if args.against == "nginx" else [])
    with tempfile.TemporaryDirectory(prefix="fata-www-bench-") as tmp:
        work = Path(tmp)
        files = site.write_site(work / "site", tuple(args.sizes))
        rows = {(k, f.size): Row(k, servers.NAMES[k], f.size, site.label(f.size))
                for k in keys for f in files}
        started = time.time()
        for n in range(args.rounds):
            order = keys if n % 2 == 0 else keys[::-1]  # interleaved, alternating first
            for key in order:
                _one_server(key, args, files, work / "site", work, load_core, rows)
        elapsed = time.time() - started
    ordered = list(rows.values())
    _finish(ordered)
    title = (f"fata bench www: wrk -t1 -c{args.connections} -d{args.duration:g}s, "
             f"median of {args.rounds} round(s), server on CPU {args.core}, wrk on {load_core}")
    report.print_table([r.record() for r in ordered], COLUMNS, title)
    for row in ordered:
        for problem in row.problems[:5]:
            print(f"  {row.name} {row.size_label}: {problem}", file=sys.stderr)
    payload = {
        "benchmark": "www",
        "config": {"rounds": args.rounds, "duration_s": args.duration,
                   "connections": args.connections, "sizes": list(args.sizes),
                   "server_core": args.core, "load_core": load_core, "elapsed_s": elapsed},
        "results": [r.record() for r in ordered],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "www-bench.json", payload)
    (args.out / "www-bench.txt").write_text(
        report.render_table([r.record() for r in ordered], COLUMNS, title))
    fata_rows = [r for r in ordered if r.server == "fata"]
    good = all(r.correct is True and (r.requests_per_s or 0) > 0 for r in fata_rows)
    return 0 if good else 1
