"""Running wrk (the HTTP load generator) and reading its report."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class WrkResult:
    """What one wrk run reported; ``problems`` non-empty means the run does not count."""

    requests_per_s: float | None = None
    requests: int | None = None
    transfer_per_s: float | None = None
    """Bytes per second."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    """Latency percentiles from ``--latency``: ``{"50%": 2.2, "99%": 4.0}``."""
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.requests_per_s is not None


def _bytes(number: str, unit: str) -> float:
    return float(number) * _UNITS[unit]


def parse(text: str) -> WrkResult:
    """Read wrk's report. Socket errors and non-2xx/3xx responses make it a wrong run."""
    result = WrkResult()
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M):
        result.requests_per_s = float(m.group(1))
    else:
        result.problems.append("no Requests/sec line in wrk's output")
    if m := re.search(r"^Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)", text, re.M):
        result.transfer_per_s = _bytes(m.group(1), m.group(2))
    if m := re.search(r"^\s*(\d+) requests in ", text, re.M):
        result.requests = int(m.group(1))
    for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        result.latency_ms[f"{m.group(1)}%"] = float(m.group(2)) * _TIME[m.group(3)]
    if m := re.search(r"Socket errors:\s*(.*)$", text, re.M):
        result.socket_errors = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(1))}
        if any(result.socket_errors.values()):
            result.problems.append(f"socket errors: {m.group(1).strip()}")
    if m := re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text):
        result.non_2xx = int(m.group(1))
        if result.non_2xx:
            result.problems.append(f"{result.non_2xx} non-2xx or 3xx responses")
    if result.requests == 0:
        result.problems.append("wrk completed no requests")
    return result


def command(url: str, *, duration: float, connections: int = 50, threads: int = 1) -> list[str]:
    """The wrk command line (not yet pinned)."""
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", url]


def run(argv: list[str], timeout: float) -> WrkResult:
    """Run ``argv`` (a pinned wrk command) and parse what it printed."""
    return run_tool("wrk", argv, timeout, parse)


def run_tool(name: str, argv: list[str], timeout: float,
             parse_output: Callable[[str], WrkResult]) -> WrkResult:
    """Run a load generator's pinned command and parse its standard output; a time-out
    or a failing exit status is a problem of the run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return WrkResult(problems=[f"{name} did not finish within {timeout:.0f} s"])
    result = parse_output(done.stdout)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip()[-300:]
        result.problems.insert(0, f"{name} exited {done.returncode}: {why}")
    return result
