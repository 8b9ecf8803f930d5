"""Running h2load (nghttp2's HTTP/2 load generator) and reading its report."""

from __future__ import annotations

import re

from .wrk import WrkResult, _bytes, run_tool

_TIME = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse(text: str) -> WrkResult:
    """Read h2load's report into the shape wrk's has; failed or errored requests and
    answers other than 2xx make it a wrong run."""
    result = WrkResult()
    if m := re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)(B|KB|MB|GB)/s",
                      text, re.M):
        result.requests_per_s = float(m.group(1))
        result.transfer_per_s = _bytes(m.group(2), m.group(3))
    else:
        result.problems.append("no 'finished in' line in h2load's output")
    if m := re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", text, re.M):
        result.requests = int(m.group(3))
        failed, errored = int(m.group(4)), int(m.group(5))
        if failed or errored:
            result.problems.append(f"{failed} failed and {errored} errored requests")
    if m := re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M):
        result.non_2xx = sum(int(m.group(i)) for i in (2, 3, 4))
        if result.non_2xx:
            result.problems.append(f"{result.non_2xx} answers other than 2xx")
    if m := re.search(r"^time for request:\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", text,
                      re.M):
        result.latency_ms["mean"] = float(m.group(1)) * _TIME[m.group(2)]
    if result.requests == 0:
        result.problems.append("h2load completed no requests")
    return result


def command(url: str, *, duration: float, connections: int = 50, streams: int = 10
            ) -> list[str]:
    """The h2load command line (not yet pinned): ``connections`` clients, each with
    ``streams`` requests in flight, for ``duration`` seconds."""
    return ["h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{duration:g}", url]


def run(argv: list[str], timeout: float) -> WrkResult:
    """Run ``argv`` (a pinned h2load command) and parse what it printed."""
    return run_tool("h2load", argv, timeout, parse)
