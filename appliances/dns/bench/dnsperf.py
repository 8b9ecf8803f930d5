"""Running dnsperf (DNS-OARC's load generator) and reading its report.

dnsperf runs pinned to a core other than the server's, sends the query file in a loop for a
fixed time and prints a summary; :func:`parse` turns that summary into :class:`DnsperfResult`.
Output that lacks the summary raises :class:`DnsperfError` rather than giving zeros, so a
broken run can never pass for a slow server.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .process import pinned

CLIENTS = 4
"""Simulated clients (source ports): several, so a server cannot win by caching one peer."""

OUTSTANDING = 100
"""Queries in flight at once: enough to keep a single-core server busy, never idle waiting."""

OUTSTANDING_CAPPED = 200
"""In flight under ``--server-cpu``: the server stops for part of every period, and enough
queries in flight keep its socket from running dry meanwhile, so the cap and not the window
sets the rate (with 300 or more, Knot and BIND lose queries while throttled)."""

TIMEOUT = 1.0
"""Seconds after which dnsperf counts a query lost (its default, 5 s, only prolongs runs)."""


class DnsperfError(RuntimeError):
    """dnsperf failed, or printed something that is not its summary."""


@dataclass(frozen=True)
class DnsperfResult:
    """dnsperf's summary of one run."""

    sent: int
    completed: int
    lost: int
    qps: float
    run_time: float
    avg_latency: float
    min_latency: float
    max_latency: float
    rcodes: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float | None = None
    """CPU seconds dnsperf itself used (set by :func:`run`): near ``run_time`` means the
    load generator, not the server, was the limit."""

    @property
    def lost_fraction(self) -> float:
        return self.lost / self.sent if self.sent else 0.0


_INT = r"(\d+)"
_FLOAT = r"([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
_PATTERNS = {
    "sent": re.compile(r"^\s*Queries sent:\s+" + _INT, re.MULTILINE),
    "completed": re.compile(r"^\s*Queries completed:\s+" + _INT, re.MULTILINE),
    "lost": re.compile(r"^\s*Queries lost:\s+" + _INT, re.MULTILINE),
    "qps": re.compile(r"^\s*Queries per second:\s+" + _FLOAT, re.MULTILINE),
    "run_time": re.compile(r"^\s*Run time \(s\):\s+" + _FLOAT, re.MULTILINE),
    "latency": re.compile(
        r"^\s*Average Latency \(s\):\s+"
        + _FLOAT
        + r"\s+\(min\s+"
        + _FLOAT
        + r",\s+max\s+"
        + _FLOAT
        + r"\)",
        re.MULTILINE,
    ),
}
_RCODES_LINE = re.compile(r"^\s*Response codes:[ \t]*(.*)$", re.MULTILINE)
_RCODE_ITEM = re.compile(r"^([A-Z][A-Z0-9]*) (\d+) \(\d+(?:\.\d+)?%\)$")


def parse(output: str) -> DnsperfResult:
    """Parse dnsperf's summary; raise :class:`DnsperfError` if any part is missing."""
    found: dict[str, re.Match[str]] = {}
    for key, pattern in _PATTERNS.items():
        match = pattern.search(output)
        if match is None:
            raise DnsperfError(f"dnsperf output has no {key!r} line")
        found[key] = match
    rcodes_line = _RCODES_LINE.search(output)
    if rcodes_line is None:
        raise DnsperfError("dnsperf output has no 'Response codes' line")
    rcodes: dict[str, int] = {}
    items = rcodes_line.group(1).strip()
    for item in filter(None, (part.strip() for part in items.split(","))):
        match = _RCODE_ITEM.match(item)
        if match is None:
            raise DnsperfError(f"unreadable response code entry {item!r}")
        rcodes[match.group(1)] = int(match.group(2))
    latency = found["latency"]
    try:
        result = DnsperfResult(
            sent=int(found["sent"].group(1)),
            completed=int(found["completed"].group(1)),
            lost=int(found["lost"].group(1)),
            qps=float(found["qps"].group(1)),
            run_time=float(found["run_time"].group(1)),
            avg_latency=float(latency.group(1)),
            min_latency=float(latency.group(2)),
            max_latency=float(latency.group(3)),
            rcodes=rcodes,
        )
    except (ValueError, OverflowError) as exc:
        raise DnsperfError(f"unreadable number in dnsperf output: {exc}") from exc
    if sum(rcodes.values()) != result.completed:
        raise DnsperfError(
            f"response codes add up to {sum(rcodes.values())}, "
            f"but {result.completed} queries completed"
        )
    return result


def command(
    port: int,
    queries: Path,
    duration: float,
    *,
    host: str = "127.0.0.1",
    clients: int = CLIENTS,
    outstanding: int = OUTSTANDING,
    timeout: float = TIMEOUT,
) -> list[str]:
    """The dnsperf command line: UDP, one thread, a fixed run time."""
    return [
        "dnsperf",
        "-s", host,
        "-p", str(port),
        "-d", str(queries),
        "-l", f"{duration:g}",
        "-c", str(clients),
        "-T", "1",
        "-q", str(outstanding),
        "-t", f"{timeout:g}",
    ]  # fmt: skip


def run(
    port: int,
    queries: Path,
    duration: float,
    *,
    core: int,
    outstanding: int = OUTSTANDING,
    extra: Sequence[str] = (),
) -> DnsperfResult:
    """Run dnsperf pinned to ``core`` against ``127.0.0.1:port`` and parse its summary."""
    argv = pinned([*command(port, queries, duration, outstanding=outstanding), *extra], core)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            argv,
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=duration + TIMEOUT + 30,
        )
    except subprocess.TimeoutExpired as exc:
        raise DnsperfError(f"dnsperf did not finish within {exc.timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-5:])
        raise DnsperfError(f"dnsperf exited with status {done.returncode}: {tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dataclasses.replace(parse(done.stdout), client_cpu_s=cpu)
