"""Starting, pinning, watching and stopping the servers under test.

Every server runs as a foreground child in its own session (so it and anything it forks --
NSD forks a server process and xfrd -- can be stopped together by process group), pinned
with ``taskset -c CORE`` so that each one gets exactly the same single core. Memory is read
from ``/proc`` for the whole process tree, because a server that forks keeps its data in
the children.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StartError(RuntimeError):
    """A server exited, or never answered, before it was ready; the message says why."""


def other_cores(core: int) -> list[int]:
    """CPUs this process may use other than ``core`` (where the load generator goes)."""
    return sorted(c for c in os.sched_getaffinity(0) if c != core)


def check_core(core: int) -> None:
    """Refuse a core we may not run on, or a machine with nothing left for dnsperf."""
    allowed = os.sched_getaffinity(0)
    if core not in allowed:
        raise ValueError(f"core {core} is not available (allowed: {sorted(allowed)})")
    if not other_cores(core):
        raise ValueError("need at least two cores: one for the server, one for dnsperf")


def pinned(argv: Sequence[str], core: int) -> list[str]:
    """``argv`` run by ``taskset -c core`` (taskset execs it: the pid stays the server's)."""
    return ["taskset", "-c", str(core), *argv]


def threads(pid: int) -> list[int]:
    """Thread ids of ``pid`` and all its descendants."""
    tids = []
    for member in process_tree(pid):
        try:
            tids.extend(int(t.name) for t in Path(f"/proc/{member}/task").iterdir())
        except OSError:
            continue
    return tids


def repin(pid: int, core: int) -> list[int]:
    """Pin every thread of ``pid``'s tree to ``core`` again; return the ids it had to move.

    taskset only sets the affinity a process starts with. Some servers change it: Knot binds
    UDP worker *n* to CPU ``n % online_cpus`` whatever its mask, which put its only worker
    on the load generator's core. Re-pinning once the server answers (its workers have
    started by then) keeps the comparison on one core for everyone.
    """
    moved = []
    for tid in threads(pid):
        try:
            if os.sched_getaffinity(tid) != {core}:
                os.sched_setaffinity(tid, {core})
                moved.append(tid)
        except (ProcessLookupError, PermissionError):
            continue
    return moved


def unpinned(pid: int, core: int) -> list[int]:
    """Threads of ``pid``'s tree allowed to run anywhere but exactly ``core``."""
    found = []
    for tid in threads(pid):
        try:
            if os.sched_getaffinity(tid) != {core}:
                found.append(tid)
        except ProcessLookupError:
            continue
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (servers listen on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError("no free port for both UDP and TCP")


@dataclass
class Running:
    """A started server: its process, when it was started, and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    started: float
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server printed, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start(
    name: str,
    argv: Sequence[str],
    *,
    core: int,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Running:
    """Start ``argv`` pinned to ``core`` in a new session, output to ``log_path``."""
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        started = time.monotonic()
        proc = subprocess.Popen(
            pinned(argv, core),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    return Running(name=name, proc=proc, started=started, log_path=log_path)


def wait_ready(running: Running, probe: Callable[[], bool], timeout: float) -> float:
    """Poll ``probe`` until it succeeds; return seconds from start to the first answer.

    Raises :class:`StartError` if the process exits first or ``timeout`` passes.
    """
    deadline = running.started + timeout
    while True:
        if running.proc.poll() is not None:
            raise StartError(
                f"{running.name} exited with status {running.proc.returncode} before answering"
                f":\n{running.log_tail()}"
            )
        if probe():
            return time.monotonic() - running.started
        if time.monotonic() > deadline:
            raise StartError(
                f"{running.name} did not answer within {timeout:.0f} s:\n{running.log_tail()}"
            )
        time.sleep(0.005)


def stop(running: Running, grace: float = 5.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers past ``grace``.

    The group is the one :func:`start` created for this server, so this ends exactly the
    server and what it forked, nothing else.
    """
    pgid = running.proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        if _wait_group(running, pgid, grace):
            return


def _wait_group(running: Running, pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        running.proc.poll()  # reap the leader, or it stays in the group as a zombie
        if running.proc.returncode is not None and not group_members(pgid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, found through ``/proc/*/task/*/children``."""
    result, pending = [], [pid]
    while pending:
        current = pending.pop()
        result.append(current)
        task_dir = Path(f"/proc/{current}/task")
        try:
            tasks = list(task_dir.iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            pending.extend(int(c) for c in children)
    return result


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` and its descendants (all threads).

    Read before and after a load run, it tells whether the server kept its core busy: a
    server below ~95% of the run time was not the bottleneck, the load generator was.
    """
    ticks = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    """Resident memory of a server's process tree, in MiB.

    ``rss_mb`` is the sum of VmRSS over the tree (the issue's measure; it counts pages that
    forked children share once per process), ``pss_mb`` the sum of proportional set sizes
    (shared pages split between sharers), which is fairer to forking servers.
    """

    rss_mb: float | None
    pss_mb: float | None
    processes: int


def memory(pid: int) -> Memory:
    """Measure :class:`Memory` for ``pid`` and its descendants now."""
    pids = process_tree(pid)
    rss = [v for v in (_status_kb(p, "VmRSS") for p in pids) if v is not None]
    pss = [v for v in (_pss_kb(p) for p in pids) if v is not None]
    return Memory(
        rss_mb=sum(rss) / 1024 if rss else None,
        pss_mb=sum(pss) / 1024 if pss else None,
        processes=len(pids),
    )
