"""Running the benchmark: every server at every zone size, one after another."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fata.bench import report

from . import check, cpucap, dnsperf, flood, process, zones
from .install import ensure_installed
from .options import HOST, REPO, Settings, parser, settings
from .peers import PEERS, Fata, Server
from .peers.base import FloodSetup
from .results import (
    COLUMNS,
    FLOOD_COLUMNS,
    Row,
    combine,
    fill_flood_ratios,
    fill_ratios,
    flood_table_rows,
    flood_title,
    table_rows,
    targets,
    write_outputs,
)

FLOOD_LEAD = 0.5
"""Seconds the flood runs beyond dnsperf's duration (it starts first and ends last)."""


def load_problem(result: dnsperf.DnsperfResult, queries: Sequence[zones.Query]) -> str | None:
    """Whether the answers under load look wrong, judged from dnsperf's rcode counts.

    dnsperf sends the query file in order, looping; so the number of NXDOMAIN queries among
    the ``sent`` first ones is known, and NXDOMAIN answers must match it up to the lost
    queries. Any rcode but NOERROR and NXDOMAIN is wrong for this zone.
    """
    odd = {code: n for code, n in result.rcodes.items() if code not in ("NOERROR", "NXDOMAIN")}
    if odd:
        return "under load answered " + ", ".join(f"{c} x{n}" for c, n in sorted(odd.items()))
    if result.completed == 0:
        return "no query completed under load"
    per_cycle = sum(not q.exists for q in queries)
    cycles, rest = divmod(result.sent, len(queries))
    expected = cycles * per_cycle + sum(not q.exists for q in queries[:rest])
    got = result.rcodes.get("NXDOMAIN", 0)
    slack = result.lost + max(5, result.sent // 100)
    if abs(got - expected) > slack:
        return f"under load {got} NXDOMAIN answers, expected {expected} +- {slack}"
    return None


class ExitedUnderLoad(RuntimeError):
    """The server died while dnsperf was sending; its numbers mean nothing."""


class FloodFailed(RuntimeError):
    """The flood generator did not run to its end; the flood row means nothing."""


@dataclass(frozen=True)
class Case:
    """One zone size's inputs, the same for every server."""

    zone: zones.Zone
    zone_file: Path
    queries: Sequence[zones.Query]
    query_file: Path
    sample: Sequence[zones.Query]


def measure(server: Server, missing: str | None, case: Case, cfg: Settings, workdir: Path,
            flood_setup: FloodSetup | None = None) -> Row:
    """Run one server once at one zone size, in a fresh ``workdir``, and return its row;
    with ``flood_setup``, with rate limiting on and the spoofed flood beside dnsperf.

    Never raises for the server's failures: they become the row's status and problems.
    """
    zone = case.zone
    row = Row(server=server.key, label=server.label, size=zone.size)
    if missing is not None:
        row.status = f"missing: {missing}"
        return row
    workdir.mkdir()
    port = process.free_port(HOST)
    launch = server.prepare(workdir, case.zone_file, zone.origin, port, flood=flood_setup)
    print(f"  {server.label:6} {zone.size:>6} names: starting on {HOST}:{port}", flush=True)
    running = process.start(
        server.label,
        launch.argv,
        core=cfg.core,
        log_path=workdir / "server.log",
        cwd=launch.cwd,
        env=launch.env,
    )
    try:
        row.first_answer_s = process.wait_ready(
            running, lambda: check.probe(HOST, port, zone.origin), server.startup_timeout
        )
        moved = process.repin(running.pid, cfg.core)
        if moved:
            row.notes.append(f"re-pinned {len(moved)} thread(s) that left core {cfg.core}")
        verdict = check.check_server(HOST, port, zone, case.sample)
        if flood_setup is not None:  # the amplifier's answer, asked once (under the rate)
            flood_verdict = check.check_server(HOST, port, zones.flood_zone(),
                                               [zones.Query(zones.FLOOD_QNAME, "TXT", True)])
            verdict.checked += flood_verdict.checked
            verdict.failures.extend(flood_verdict.failures)
        row.correct, row.checked = verdict.ok, verdict.checked
        row.problems.extend(verdict.failures)
        load = _load if flood_setup is None else _flooded_load
        if cfg.server_cpu is None:
            load(row, running, port, case, cfg)
        else:
            with cpucap.capped(process.threads(running.pid), cfg.server_cpu / 100):
                load(row, running, port, case, cfg)
        if not row.correct:
            row.status = "WRONG ANSWERS"
    except cpucap.CapError as exc:
        row.status = "no CPU cap"
        row.problems.append(str(exc))
    except process.StartError as exc:
        row.status = "failed to start"
        row.problems.append(str(exc))
    except ExitedUnderLoad as exc:
        row.status = "exited under load"
        row.problems.append(str(exc))
    except dnsperf.DnsperfError as exc:
        row.status = "load run failed"
        row.problems.append(str(exc))
    except FloodFailed as exc:
        row.status = "flood failed"
        row.problems.append(str(exc))
    finally:
        process.stop(running)
    shown = f"{row.qps:,.0f} qps" if row.qps is not None else row.status
    print(f"  {server.label:6} {zone.size:>6} names: {shown}", flush=True)
    for note in row.notes:
        print(f"    - {note}", flush=True)
    for problem in row.problems:
        print(f"    ! {problem}", flush=True)
    return row


def _load(row: Row, running: process.Running, port: int, case: Case, cfg: Settings) -> None:
    """The timed part: dnsperf against the server, then its memory, CPU and pinning."""
    cpu_before = process.cpu_seconds(running.pid)
    result = dnsperf.run(port, case.query_file, cfg.duration, core=cfg.load_core,
                         outstanding=cfg.outstanding)
    cpu_used = process.cpu_seconds(running.pid) - cpu_before
    mem = process.memory(running.pid)  # after load, while the server still runs
    escaped = process.unpinned(running.pid, cfg.core)
    if running.proc.poll() is not None:
        raise ExitedUnderLoad(
            f"{running.name} exited with status {running.proc.returncode} during the load run:"
            f"\n{running.log_tail()}"
        )
    row.qps = result.qps
    row.sent = result.sent
    row.latency_ms = result.avg_latency * 1000
    row.lost_pct = 100 * result.lost_fraction
    row.rcodes = dict(result.rcodes)
    row.rss_mb, row.pss_mb, row.processes = mem.rss_mb, mem.pss_mb, mem.processes
    if result.run_time > 0:
        row.server_cpu_pct = 100 * cpu_used / result.run_time
        if result.client_cpu_s is not None:
            row.client_cpu_pct = 100 * result.client_cpu_s / result.run_time
    if cpu_used > 0:
        row.qps_per_cpu = result.completed / cpu_used
    if escaped:
        row.problems.append(f"threads {escaped} left core {cfg.core} during the run")
        row.status = "not pinned"
    problem = load_problem(result, case.queries)
    if problem is not None:
        row.correct = False
        row.problems.append(problem)


def _flooded_load(row: Row, running: process.Running, port: int, case: Case,
                  cfg: Settings) -> None:
    """:func:`_load` with the spoofed flood (``flood.py``, pinned beside dnsperf) running
    from just before it to just after; the flood's counts go into ``row.flood``."""
    argv = process.pinned([
        sys.executable, flood.__file__, "--server", HOST, "--port", str(port),
        "--qname", zones.FLOOD_QNAME, "--rate", str(cfg.flood_rate),
        "--duration", str(cfg.duration + FLOOD_LEAD),
    ], cfg.load_core)  # fmt: skip
    generator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, stdin=subprocess.DEVNULL)
    try:
        _load(row, running, port, case, cfg)
        out, err = generator.communicate(timeout=cfg.duration + 30)
    except subprocess.TimeoutExpired:
        raise FloodFailed("the flood generator did not finish") from None
    finally:
        if generator.poll() is None:
            generator.kill()
            generator.wait()
    if generator.returncode != 0:
        raise FloodFailed(f"the flood generator exited {generator.returncode}: {err[-500:]}")
    try:
        row.flood = flood.FloodCounts.from_json(out)
    except ValueError as exc:
        raise FloodFailed(str(exc)) from None


def _rounds(servers: Sequence[Server], missing: dict[str, str | None], case: Case,
            cfg: Settings, workroot: Path, tag: str,
            flood_setup: FloodSetup | None = None) -> list[Row]:
    """Every server ``cfg.rounds`` times at one case, interleaved, one combined row each."""
    runs: dict[str, list[Row]] = {s.key: [] for s in servers}
    for round_no in range(cfg.rounds):
        # Interleave the servers and rotate who goes first, so that load from elsewhere on
        # a shared machine falls on all of them alike.
        order = servers[round_no % len(servers) :] + servers[: round_no % len(servers)]
        if cfg.rounds > 1:
            print(f"round {round_no + 1} of {cfg.rounds}, {tag}", flush=True)
        for server in order:
            workdir = workroot / f"{server.key}-{tag.replace(' ', '-')}-{round_no}"
            runs[server.key].append(
                measure(server, missing[server.key], case, cfg, workdir, flood_setup)
            )
    return [combine(runs[s.key]) for s in servers]


def _case(size: int, cfg: Settings, workroot: Path) -> Case:
    zone = zones.generate_zone(size)
    zone_file = zone.write(workroot / f"zone-{size}.db")
    queries = zones.generate_queries(zone)
    query_file = zones.write_queries(queries, workroot / f"queries-{size}.txt")
    sample = check.sample_queries(zone, queries, cfg.sample_size)
    return Case(zone, zone_file, queries, query_file, sample)


def main(argv: list[str]) -> int:
    """The whole run; see ``harness.py`` for what it does and its exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, or bad options
        return int(exc.code or 0)
    try:
        cfg = settings(args)
    except ValueError as exc:
        print(f"fata bench dns: {exc}", file=sys.stderr)
        return 2

    fata = Fata(REPO, cfg.fata)
    servers: list[Server] = [fata, *(PEERS[key]() for key in cfg.peers)]
    install_log: list[str] = []
    ensure_installed(servers, cfg, install_log)
    for line in install_log:
        print(line, flush=True)
    if shutil.which("dnsperf") is None:
        print("fata bench dns: dnsperf is not installed (Debian package dnsperf)", file=sys.stderr)
        return 1
    missing = {s.key: s.missing() for s in servers}
    versions = {s.key: s.version() for s in servers if missing[s.key] is None}
    for s in servers:
        state = versions.get(s.key) or f"MISSING: {missing[s.key]}"
        print(f"{s.label:6} {state}", flush=True)

    rows: list[Row] = []
    flood_rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fata-bench-dns-") as tmp:
        workroot = Path(tmp)
        for size in cfg.sizes:
            rows.extend(_rounds(servers, missing, _case(size, cfg, workroot), cfg, workroot,
                                f"{size:,} names"))
        if cfg.flood_rate > 0:
            setup = FloodSetup(zones.flood_zone().write(workroot / "flood.db"),
                               zones.FLOOD_ORIGIN)
            print(f"spoofed flood of {cfg.flood_rate:,.0f} q/s with rate limiting on, "
                  f"{cfg.flood_size:,} names", flush=True)
            flood_rows = _rounds(servers, missing, _case(cfg.flood_size, cfg, workroot), cfg,
                                 workroot, f"flood {cfg.flood_size:,} names", setup)
    fill_ratios(rows)
    fill_flood_ratios(flood_rows, rows)
    found = targets(rows, cfg.sizes)
    paths = write_outputs(cfg, servers, versions, missing, rows, found, install_log, flood_rows)

    print()
    title = (
        f"DNS benchmark: qps on one pinned core, median of {cfg.rounds} run(s) "
        f"of {cfg.duration:g} s"
    )
    report.print_table(table_rows(rows), COLUMNS, title)
    if flood_rows:
        report.print_table(flood_table_rows(flood_rows), FLOOD_COLUMNS, flood_title(cfg))
    for target in found:
        print(target.describe())
    for kind, path in paths.items():
        print(f"{kind}: {path}")

    fata_rows = [row for row in rows if row.server == Fata.key]
    if missing[Fata.key] is not None:
        print(f"fata bench dns: Fata is missing: {missing[Fata.key]}", file=sys.stderr)
        return 1
    bad = [row for row in fata_rows if not row.ran or not row.correct]
    bad += [row for row in flood_rows if row.server == Fata.key
            and (not row.ran or not row.correct or row.flood is None)]
    if bad:
        print(
            "fata bench dns: Fata did not run correctly at "
            + ", ".join(f"{row.size:,} names ({row.status})" for row in bad),
            file=sys.stderr,
        )
        return 1
    return 0
