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

from . import check, h2load, servers, site, wrk
from .servers import cpucap, process

DEFAULT_OUT = Path("bench-results") / "www"
MODES = {
    "http": "HTTP/1.1",  # wrk, keep-alive
    "https": "HTTPS 1.1",  # wrk over TLS (1.3), keep-alive
    "h2": "HTTP/2 TLS",  # h2load over TLS, ALPN h2, 10 streams per connection
    "conn": "new conn",  # wrk, Connection: close: one request per connection
}


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
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated, of: http (keep-alive), https (TLS 1.3 keep-alive), "
                        "h2 (HTTP/2 over TLS, h2load), conn (one request per connection)")
    p.add_argument("--server-cpu", type=float, default=None, metavar="PERCENT",
                   help="cap each server at this share of its core (a cgroup CFS limit, as "
                        "root) so that it, not the load generator, is the bottleneck")
    p.add_argument("--site-mb", type=int, default=50,
                   help="MiB of the site whose start-up time (spawn to first answer, of a "
                        "built image) and resident memory are measured; 0 skips it")
    p.add_argument("--start-timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        raise _BadOptions(f"--modes: unknown {unknown or 'empty'}; choose from {list(MODES)}")
    if args.quick:
        args.rounds, args.duration, args.sizes = 1, 2.0, (site.SIZES[0],)
        args.site_mb = min(args.site_mb, 5)
    else:
        args.sizes = site.SIZES
    if args.server_cpu is not None and not 0 < args.server_cpu <= 100:
        raise _BadOptions("--server-cpu wants a percentage in (0, 100]")
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        raise _BadOptions("--rounds, --duration and --connections must be positive")
    return args


@dataclass
class Row:
    """One server at one file size, over all rounds."""

    server: str
    name: str
    mode: str
    mode_label: str
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


def _load_argv(mode: str, port: int, tls_port: int, path: str, args: argparse.Namespace
               ) -> list[str]:
    """The load generator's command for one mode and file (not yet pinned)."""
    if mode == "h2":
        return h2load.command(f"https://127.0.0.1:{tls_port}{path}", duration=args.duration,
                              connections=args.connections)
    url = (f"https://127.0.0.1:{tls_port}{path}" if mode == "https"
           else f"http://127.0.0.1:{port}{path}")
    argv = wrk.command(url, duration=args.duration, connections=args.connections)
    if mode == "conn":
        argv[1:1] = ["-H", "Connection: close"]
    return argv


def _check(args: argparse.Namespace, port: int, tls: servers.TLS | None, ca: Path,
           files: list[site.SiteFile]) -> list[str]:
    """Every file checked on every listener the chosen modes time."""
    problems = check.check_files("127.0.0.1", port, files)
    if tls is not None and "https" in args.modes:
        problems += [f"HTTPS {p}" for p in check.check_files("127.0.0.1", tls.port, files,
                                                            ca=ca)]
    if tls is not None and "h2" in args.modes:
        problems += [f"HTTP/2 {p}" for p in check.check_files_h2("127.0.0.1", tls.port, files,
                                                                ca)]
    return problems


def _one_server(key: str, args: argparse.Namespace, files: list[site.SiteFile], site_dir: Path,
                work: Path, load_core: int, rows: dict[tuple[str, str, int], Row],
                cert: tuple[Path, Path, Path]) -> None:
    """Start ``key``, check it, run the load at every mode and size, stop it; results go
    into ``rows``."""
    port = process.free_port()
    tls = (servers.TLS(process.free_port(), cert[0], cert[1])
           if {"https", "h2"} & set(args.modes) else None)
    spec = (servers.fata(site_dir, port, tls) if key == "fata"
            else servers.nginx(site_dir, port, work, tls))
    mine = [rows[(key, m, f.size)] for m in args.modes for f in files]
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
        problems = _check(args, port, tls, cert[2], files)
        if problems:
            for row in mine:
                row.status, row.correct = "wrong answers", False
                row.problems.extend(problems)
            return
        for row in mine:
            f = next(f for f in files if f.size == row.size)
            argv = process.pinned(_load_argv(row.mode, port, tls.port if tls else 0, f.path,
                                             args), load_core)
            tool = h2load if row.mode == "h2" else wrk
            try:
                result = _timed(tool, argv, args, running.pid)
            except cpucap.CapError as exc:
                row.correct, row.status = False, "no cap"
                row.problems.append(str(exc))
                continue
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


@dataclass
class Startup:
    """One server started on the large site: seconds from spawn to the first right answer,
    and resident memory (VmRSS over its process tree, MiB) once it answers."""

    server: str
    name: str
    site_mb: int
    first_answer_s: float | None = None
    rss_mb: float | None = None
    status: str = "ok"


def _startup(key: str, args: argparse.Namespace, work: Path, image: Path,
             first: site.SiteFile) -> Startup:
    """Start ``key`` on the large site (``work / "large"``, whose first file is ``first``)
    and measure :class:`Startup`."""
    result = Startup(key, servers.NAMES[key], args.site_mb)
    root = work / "large"
    port = process.free_port()
    spec = (servers.fata(root, port, image=image) if key == "fata"
            else servers.nginx(root, port, work / "large-nginx"))
    if spec.argv is None:
        result.status = spec.missing or "not available"
        return result
    running = process.start(key, spec.argv, core=args.core, log_path=work / f"{key}-large.log",
                            env=spec.env)
    try:
        result.first_answer_s = process.wait_ready(
            running, lambda: not check.check_files("127.0.0.1", port, [first], timeout=0.5),
            args.start_timeout)
        result.rss_mb = process.memory(running.pid).rss_mb
    except process.StartError as exc:
        result.status = f"did not start: {str(exc)[:200]}"
    finally:
        process.stop(running)
    return result


def _timed(tool: Any, argv: list[str], args: argparse.Namespace, pid: int) -> wrk.WrkResult:
    """One load run, with the server capped at ``--server-cpu`` meanwhile if asked."""
    if args.server_cpu is None:
        return tool.run(argv, timeout=args.duration + 30)
    with cpucap.capped(process.threads(pid), args.server_cpu / 100):
        return tool.run(argv, timeout=args.duration + 30)


def _finish(rows: list[Row]) -> None:
    for row in rows:
        row.requests_per_s = _median(row.rounds_rps)
        row.transfer_mb_s = _median(row._transfer)
        row.p50_ms = _median(row._p50)
        row.p99_ms = _median(row._p99)
    fata = {(r.mode, r.size): r for r in rows if r.server == "fata"}
    for row in rows:
        if row.server != "fata" and (row.mode, row.size) in fata:
            row.fata_ratio = report.ratio(fata[(row.mode, row.size)].requests_per_s,
                                          row.requests_per_s)


COLUMNS = [
    report.Column("name", "Server", align="left"),
    report.Column("mode_label", "Mode", align="left"),
    report.Column("size_label", "File"),
    report.Column("requests_per_s", "Requests/s", "{:,.0f}"),
    report.Column("transfer_mb_s", "MB/s", "{:,.1f}"),
    report.Column("p50_ms", "p50 ms", "{:.2f}"),
    report.Column("p99_ms", "p99 ms", "{:.2f}"),
    report.Column("fata_ratio", "Fata/nginx", "{:.2f}x"),
    report.Column("correct", "Correct", lambda v: "yes" if v else "NO"),
    report.Column("status", "Status", align="left"),
]


STARTUP_COLUMNS = [
    report.Column("name", "Server", align="left"),
    report.Column("site_mb", "Site MiB"),
    report.Column("first_answer_s", "1st answer s", "{:.3f}"),
    report.Column("rss_mb", "RSS MiB", "{:.1f}"),
    report.Column("status", "Status", align="left"),
]


def write_chart(path: Path, rows: list[Row], args: argparse.Namespace, keys: list[str]
                ) -> Path:
    """A grouped bar chart: one group per mode and file size, one bar per server, with the
    range over rounds as error bars."""
    by_key = {(r.server, r.mode, r.size): r for r in rows}
    cells = [(m, size) for m in args.modes for size in args.sizes]
    labels = [f"{MODES[m]}\n{site.label(size)}" for m, size in cells]
    series = {servers.NAMES[k]: [by_key[(k, m, size)].requests_per_s for m, size in cells]
              for k in keys}
    spread: dict[str, list[tuple[float, float] | None]] = {
        servers.NAMES[k]: [(min(r.rounds_rps), max(r.rounds_rps)) if r.rounds_rps else None
                           for r in (by_key[(k, m, size)] for m, size in cells)]
        for k in keys}
    return report.grouped_bar_chart(
        path, labels, series, spread=spread,
        title=f"www: requests/s, one pinned core (median of {args.rounds} round(s))",
        ylabel="requests per second", xlabel="mode and file size")


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except _BadOptions as exc:
        print(f"fata bench www: {exc}", file=sys.stderr)
        return 2
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client"), ("curl", "curl")):
        needed = tool == "wrk" or (tool in ("h2load", "curl") and "h2" in args.modes)
        if needed and shutil.which(tool) is None:
            print(f"fata bench www: {tool} is not installed (apt-get install {package})",
                  file=sys.stderr)
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
        cert = servers.make_certificate(work / "tls")
        rows = {(k, m, f.size): Row(k, servers.NAMES[k], m, MODES[m], f.size,
                                    site.label(f.size))
                for k in keys for m in args.modes for f in files}
        started = time.time()
        for n in range(args.rounds):
            order = keys if n % 2 == 0 else keys[::-1]  # interleaved, alternating first
            for key in order:
                _one_server(key, args, files, work / "site", work, load_core, rows, cert)
        startups: list[Startup] = []
        if args.site_mb > 0:
            (work / "large-nginx").mkdir()
            try:
                image: Path | None = servers.build_image(work / "image")
            except RuntimeError as exc:
                print(f"fata bench www: {exc}", file=sys.stderr)
                image = None
            if image is not None:
                first = site.write_large_site(work / "large", args.site_mb)
                startups = [_startup(k, args, work, image, first) for k in keys]
        elapsed = time.time() - started
    ordered = list(rows.values())
    _finish(ordered)
    title = (f"fata bench www: wrk -t1 -c{args.connections} / h2load -t1 -c{args.connections} "
             f"-m10, {args.duration:g} s each, median of {args.rounds} round(s), server on "
             f"CPU {args.core}, load on {load_core}")
    report.print_table([r.record() for r in ordered], COLUMNS, title)
    for row in ordered:
        for problem in row.problems[:5]:
            print(f"  {row.name} {row.mode_label} {row.size_label}: {problem}", file=sys.stderr)
    payload = {
        "benchmark": "www",
        "config": {"rounds": args.rounds, "duration_s": args.duration,
                   "connections": args.connections, "sizes": list(args.sizes),
                   "modes": list(args.modes), "server_cpu_pct": args.server_cpu,
                   "server_core": args.core, "load_core": load_core, "elapsed_s": elapsed},
        "results": [r.record() for r in ordered],
    }
    if startups:
        report.print_table([asdict(s) for s in startups], STARTUP_COLUMNS,
                           f"start-up on a {args.site_mb} MiB site (spawn to first answer, "
                           f"built image) and resident memory")
    payload["startup"] = [asdict(s) for s in startups]
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "www-bench.json", payload)
    (args.out / "www-bench.txt").write_text(
        report.render_table([r.record() for r in ordered], COLUMNS, title))
    try:
        png = write_chart(args.out / "www-bench.png", ordered, args, keys)
        print(f"wrote {png}")
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
    fata_rows = [r for r in ordered if r.server == "fata"]
    good = all(r.correct is True and (r.requests_per_s or 0) > 0 for r in fata_rows)
    return 0 if good else 1
