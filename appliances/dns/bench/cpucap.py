"""Give the server under test a fixed share of its core (a CFS bandwidth limit).

Why: on a small machine dnsperf, alone on the other core, tops out near 190,000 queries a
second, and the fastest servers (Knot, NSD, Fata) all answer faster than that: each of them
then measures dnsperf, and their qps differ by noise.  Capping every server at the same
share of its core (``--server-cpu 50`` gives each 5 ms of every 10 ms) makes the server the
bottleneck again, so the qps compares servers: the ASPLOS paper's question, "how many
queries does one core answer", on hardware where the load generator cannot outrun them.

Works with the cgroup v1 ``cpu`` controller or cgroup v2, as root.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PERIOD_US = 10_000
V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")


class CapError(RuntimeError):
    """The cap cannot be set here (not root, or no cpu controller)."""


def _make_group(name: str, share: float) -> tuple[Path, str]:
    """Create the group with the limit; return it and the file taking thread ids."""
    quota = max(1000, round(PERIOD_US * share))
    if (V1 / "cpu.cfs_quota_us").exists():
        group = V1 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        return group, "tasks"
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        with contextlib.suppress(OSError):
            (V2 / "cgroup.subtree_control").write_text("+cpu")
        group = V2 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        return group, "cgroup.procs"  # a thread id moves its whole process there
    raise CapError("no cgroup cpu controller at /sys/fs/cgroup (v1 cpu/ or v2)")


@contextlib.contextmanager
def capped(pids: list[int], share: float) -> Iterator[None]:
    """Run ``pids`` (every thread of the server) at ``share`` (0..1] of one core meanwhile."""
    if os.geteuid() != 0:
        raise CapError("--server-cpu needs root (it creates a cgroup)")
    name = f"fata-bench-{os.getpid()}"
    try:
        group, members = _make_group(name, share)
    except OSError as exc:
        raise CapError(f"cannot create the cgroup for --server-cpu: {exc}") from exc
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, OSError):
                (group / members).write_text(str(pid))
        yield
    finally:
        root = group.parent
        with contextlib.suppress(OSError):
            for pid in (group / members).read_text().split():
                with contextlib.suppress(OSError):
                    (root / members).write_text(pid)
        with contextlib.suppress(OSError):
            group.rmdir()
