"""The benchmark's results: one :class:`Row` per server and zone size, the targets of
issue 3, and their presentation (table, JSON record, bar chart) through :mod:`fata.bench.report`.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fata.bench import report

from . import dnsperf, flood, zones
from .flood import FloodCounts
from .options import Settings
from .peers import PEERS, Fata, Server
from .peers.base import FloodSetup

QPS_TARGETS = {"knot": 1.0, "bind": 1.3}
"""Issue 3's speed target: Fata's qps at least this multiple of the peer's, same core."""
RSS_TARGET_MB = 100.0
RSS_TARGET_SIZE = 10_000
FIRST_ANSWER_TARGET_S = 0.25


@dataclass
class Row:
    """One server at one zone size: what was measured, and what went wrong."""

    server: str
    label: str
    size: int
    status: str = "ok"
    qps: float | None = None
    latency_ms: float | None = None
    sent: int | None = None
    lost_pct: float | None = None
    rcodes: dict[str, int] = field(default_factory=dict)
    rss_mb: float | None = None
    pss_mb: float | None = None
    processes: int | None = None
    first_answer_s: float | None = None
    server_cpu_pct: float | None = None
    client_cpu_pct: float | None = None
    qps_per_cpu: float | None = None
    """Answers per CPU-second the server used: on a machine whose cores other work also
    uses, this is steadier than qps, though it leaves out kernel time spent in interrupts."""
    correct: bool | None = None
    checked: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fata_ratio: float | None = None
    fata_cpu_ratio: float | None = None
    """Fata's answers per CPU-second over this server's, at the same size (peers only)."""
    rounds_qps: list[float | None] = field(default_factory=list)
    """qps of every round, in order; ``qps`` is their median."""
    flood: FloodCounts | None = None
    """In the flood run: what the spoofed flood sent and what came back to its sources."""
    quiet_ratio: float | None = None
    """In the flood run: ordinary qps under the flood over this server's qps without it."""

    @property
    def ran(self) -> bool:
        return self.qps is not None


def combine(runs: Sequence[Row]) -> Row:
    """One row from several rounds of the same server and size.

    The round with the median qps stands for the server (its latency, CPU and so on, taken
    together, stay consistent); memory is the largest seen, the first answer the median.
    Every round's problems are kept, and one wrong round makes the whole row wrong.
    """
    if not runs:
        raise ValueError("no runs to combine")
    ran = sorted((r for r in runs if r.ran), key=lambda r: r.qps or 0.0)
    if not ran:
        base = replace(runs[0])
    else:
        base = replace(ran[(len(ran) - 1) // 2])
        if len(ran) % 2 == 0 and len(ran) > 1:
            base.qps = statistics.median(r.qps or 0.0 for r in ran)
        rss = [r.rss_mb for r in ran if r.rss_mb is not None]
        base.rss_mb = max(rss) if rss else None
        starts = [r.first_answer_s for r in runs if r.first_answer_s is not None]
        base.first_answer_s = statistics.median(starts) if starts else None
    base.rounds_qps = [r.qps for r in runs]
    base.problems = [p for r in runs for p in r.problems]
    base.notes = list(dict.fromkeys(n for r in runs for n in r.notes))
    checked = [r.correct for r in runs if r.correct is not None]
    base.correct = all(checked) if checked else None
    base.checked = sum(r.checked or 0 for r in runs) or None
    bad = [r.status for r in runs if r.status != "ok"]
    if len(set(bad)) == 1 and len(bad) == len(runs):
        base.status = bad[0]
    elif bad:
        base.status = f"{bad[0]} ({len(bad)} of {len(runs)} runs)"
    return base


def fill_ratios(rows: Sequence[Row]) -> None:
    """Set each peer row's Fata/peer ratios (qps, and answers per CPU-second) at its size."""
    fata = {row.size: row for row in rows if row.server == Fata.key}
    for row in rows:
        mine = fata.get(row.size)
        if row.server != Fata.key and mine is not None:
            row.fata_ratio = report.ratio(mine.qps, row.qps)
            row.fata_cpu_ratio = report.ratio(mine.qps_per_cpu, row.qps_per_cpu)


def fill_flood_ratios(flood_rows: Sequence[Row], rows: Sequence[Row]) -> None:
    """Set each flood row's ratio of ordinary qps under the flood to the same server's
    qps at that size without it (the ordinary rows), and Fata's ratios to the peers."""
    quiet = {(row.server, row.size): row for row in rows}
    for row in flood_rows:
        base = quiet.get((row.server, row.size))
        row.quiet_ratio = report.ratio(row.qps, base.qps if base else None)
    fill_ratios(flood_rows)


def targets(rows: Sequence[Row], sizes: Sequence[int]) -> list[report.Target]:
    """Issue 3's targets for the Fata appliance, each met, not met, or unknown."""
    by_key = {(row.server, row.size): row for row in rows}
    found: list[report.Target] = []
    for size in sizes:
        fata = by_key.get((Fata.key, size))
        for peer, factor in QPS_TARGETS.items():
            peer_row = by_key.get((peer, size))
            if peer_row is None:
                continue
            found.append(
                report.Target(
                    name=f"qps vs {PEERS[peer].label} at {size:,} names",
                    measured=report.ratio(fata.qps if fata else None, peer_row.qps),
                    threshold=factor,
                    comparison=">=",
                    unit="x",
                )
            )
    for size in sizes:
        fata = by_key.get((Fata.key, size))
        found.append(
            report.Target(
                name=f"first answer after start at {size:,} names",
                measured=fata.first_answer_s if fata else None,
                threshold=FIRST_ANSWER_TARGET_S,
                comparison="<=",
                unit=" s",
            )
        )
    if RSS_TARGET_SIZE in sizes:
        fata = by_key.get((Fata.key, RSS_TARGET_SIZE))
        found.append(
            report.Target(
                name=f"resident memory at {RSS_TARGET_SIZE:,} names",
                measured=fata.rss_mb if fata else None,
                threshold=RSS_TARGET_MB,
                comparison="<=",
                unit=" MB",
            )
        )
    return found


COLUMNS = [
    report.Column("label", "Server", align="left"),
    report.Column("size", "Names", "{:,}"),
    report.Column("qps", "qps", "{:,.0f}"),
    report.Column("fata_ratio", "Fata/this", "{:.2f}x"),
    report.Column("latency_ms", "Latency ms", "{:.3f}"),
    report.Column("lost_pct", "Lost %", "{:.2f}"),
    report.Column("rss_mb", "RSS MB", "{:.1f}"),
    report.Column("first_answer_s", "1st answer s", "{:.3f}"),
    report.Column("server_cpu_pct", "Server CPU %", "{:.0f}"),
    report.Column("client_cpu_pct", "dnsperf CPU %", "{:.0f}"),
    report.Column("qps_per_cpu", "q/CPU-s", "{:,.0f}"),
    report.Column("answers", "Answers", align="left"),
    report.Column("status", "Status", align="left"),
]


FLOOD_COLUMNS = [
    report.Column("label", "Server", align="left"),
    report.Column("flood_sent", "Flood q/s", "{:,.0f}"),
    report.Column("flood_replies", "Replies/s out", "{:,.0f}"),
    report.Column("flood_full", "Full answers/s", "{:,.0f}"),
    report.Column("flood_slipped", "Slipped (TC)/s", "{:,.0f}"),
    report.Column("amplification", "Bytes out/in", "{:.2f}x"),
    report.Column("qps", "Ordinary qps", "{:,.0f}"),
    report.Column("quiet_ratio", "vs no flood", "{:.2f}x"),
    report.Column("fata_ratio", "Fata/this", "{:.2f}x"),
    report.Column("lost_pct", "Lost %", "{:.2f}"),
    report.Column("server_cpu_pct", "Server CPU %", "{:.0f}"),
    report.Column("answers", "Answers", align="left"),
    report.Column("status", "Status", align="left"),
]


def flood_title(cfg: Settings) -> str:
    cap = "" if cfg.server_cpu is None else f", server capped at {cfg.server_cpu:g}%"
    return (
        f"DNS under a spoofed flood of {cfg.flood_rate:,.0f} q/s for {zones.FLOOD_QNAME} TXT "
        f"from {flood.SOURCES} addresses in {flood.PREFIXES} /24s, response rate limiting on "
        f"({FloodSetup.rate}/s, slip {FloodSetup.slip}); ordinary "
        f"queries: dnsperf, exempt, {cfg.flood_size:,} names{cap}"
    )


def flood_rates(f: FloodCounts) -> dict[str, float | None]:
    """A flood's counts per second of sending, and its amplification."""
    return {
        "flood_sent": f.per_second(f.sent),
        "flood_replies": f.per_second(f.replies),
        "flood_full": f.per_second(f.full),
        "flood_slipped": f.per_second(f.slipped),
        "amplification": f.amplification,
    }


def flood_table_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    out = table_rows(rows)
    for cells, row in zip(out, rows, strict=True):
        if row.flood is not None:
            cells.update(flood_rates(row.flood))
    return out


def table_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        cells = dict(vars(row))
        if row.correct is None:
            cells["answers"] = None
        else:
            cells["answers"] = f"ok ({row.checked})" if row.correct else "WRONG"
        out.append(cells)
    return out


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "kernel": platform.release(), "python": platform.python_version()}


def _value(rows: Sequence[Row], server: str, size: int, name: str) -> float | None:
    for row in rows:
        if row.server == server and row.size == size:
            return getattr(row, name)
    return None


def _spread(rows: Sequence[Row], server: str, size: int) -> tuple[float, float] | None:
    """Lowest and highest qps over the rounds, when there was more than one."""
    for row in rows:
        if row.server == server and row.size == size:
            values = [q for q in row.rounds_qps if q is not None]
            return (min(values), max(values)) if len(values) > 1 else None
    return None


def write_outputs(
    cfg: Settings,
    servers: Sequence[Server],
    versions: dict[str, str],
    missing: dict[str, str | None],
    rows: Sequence[Row],
    found: Sequence[report.Target],
    install_log: Sequence[str],
    flood_rows: Sequence[Row] = (),
) -> dict[str, Path]:
    """The table (text), the JSON record and the PNG chart, under ``cfg.out``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    cap = "" if cfg.server_cpu is None else f", each server capped at {cfg.server_cpu:g}% of it"
    title = (
        f"DNS: queries per second, UDP, one pinned core (server core {cfg.core}{cap}, "
        f"dnsperf core {cfg.load_core}, median of {cfg.rounds} run(s) of {cfg.duration:g} s)"
    )
    text = report.render_table(table_rows(rows), COLUMNS, title)
    if flood_rows:
        text += "\n" + report.render_table(flood_table_rows(flood_rows), FLOOD_COLUMNS,
                                           flood_title(cfg))
    text += "\n" + "\n".join(t.describe() for t in found) + "\n"
    table_path = cfg.out / "dns-bench.txt"
    table_path.write_text(text, encoding="utf-8")
    payload = {
        "benchmark": "dns",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "config": {
            "sizes": cfg.sizes,
            "duration_s": cfg.duration,
            "rounds": cfg.rounds,
            "server_core": cfg.core,
            "load_core": cfg.load_core,
            "server_cpu_pct": cfg.server_cpu,
            "quick": cfg.quick,
            "transport": "udp",
            "dnsperf": {
                "clients": dnsperf.CLIENTS,
                "outstanding": cfg.outstanding,
                "threads": 1,
                "timeout_s": dnsperf.TIMEOUT,
            },
            "query_mix": {"nxdomain_fraction": zones.NXDOMAIN_FRACTION, "origin": zones.ORIGIN},
        },
        "servers": [
            {
                "key": s.key,
                "label": s.label,
                "version": versions.get(s.key),
                "missing": missing.get(s.key),
            }
            for s in servers
        ],
        "results": [vars(row) for row in rows],
        "flood": {
            "rate_qps": cfg.flood_rate,
            "qname": zones.FLOOD_QNAME,
            "size": cfg.flood_size if flood_rows else None,
            "results": [
                {**vars(row), "flood": None if row.flood is None
                 else {**asdict(row.flood), **flood_rates(row.flood)}}
                for row in flood_rows
            ],
        },
        "targets": [t.as_dict() for t in found],
        "install_log": list(install_log),
    }
    json_path = report.write_json(cfg.out / "dns-bench.json", payload)
    labels = [f"{size:,}" for size in cfg.sizes]
    series = {s.label: [_value(rows, s.key, size, "qps") for size in cfg.sizes] for s in servers}
    spread = {s.label: [_spread(rows, s.key, size) for size in cfg.sizes] for s in servers}
    png_path = report.grouped_bar_chart(
        cfg.out / "dns-bench.png",
        labels,
        series,
        spread=spread,
        title="DNS throughput on one pinned core (UDP, dnsperf"
        + (f"; median and range of {cfg.rounds} runs)" if cfg.rounds > 1 else ")"),
        ylabel="queries per second",
        xlabel="zone size (names)",
    )
    efficiency = {
        s.label: [_value(rows, s.key, size, "qps_per_cpu") for size in cfg.sizes] for s in servers
    }
    cpu_png_path = report.grouped_bar_chart(
        cfg.out / "dns-bench-cpu.png",
        labels,
        efficiency,
        title="DNS answers per CPU-second of the server (UDP, dnsperf)",
        ylabel="answers per CPU-second",
        xlabel="zone size (names)",
    )
    return {
        "table": table_path,
        "json": json_path,
        "png": png_path,
        "png (per CPU-second)": cpu_png_path,
    }
