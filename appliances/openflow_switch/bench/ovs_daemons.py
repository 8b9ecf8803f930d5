"""Open vSwitch, and the process helpers, shared by the switch's harnesses: ``fata bench
openflow_switch`` (harness.py) and the os-ken switch tester run (switch_tester.py).

``Ovs`` starts ``ovsdb-server`` and ``ovs-vswitchd`` inside a network namespace on a private
database and run directory (never the system's), so a harness can make bridges of either
datapath on the veths it created and tear everything down after.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
READY_TIMEOUT = 30.0
# (namespace, argv, core, log, env) -> the started process
Starter = Callable[[str, list[str], int, Path, "dict[str, str] | None"], subprocess.Popen]


class BenchError(RuntimeError):
    """A step that failed, with the reason to report."""


def sh(*cmd: str, timeout: float = 60) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def pin(core: int):
    return lambda: os.sched_setaffinity(0, {core})


def start_in(ns: str, argv: list[str], core: int, log: Path,
             env: dict[str, str] | None = None) -> subprocess.Popen:
    """``argv`` in network namespace ``ns``, pinned to ``core``, its output to ``log``, in a
    session of its own (so :func:`stop` can signal its whole group)."""
    with open(log, "wb") as out:
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(Path(__file__).resolve().parents[3]),
                                start_new_session=True, preexec_fn=pin(core))


def wait_until(probe, timeout: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    """Until ``probe()`` is true; fails after ``timeout`` or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not probe():
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: exited with status {proc.returncode}: {tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout:g} s: {tail(log)}")
        time.sleep(0.01)  # a poll interval, not a wait: the condition decides


def tail(log: Path | None, lines: int = 8) -> str:
    if log is None or not log.exists():
        return ""
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def stop(proc: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGTERM the process group this harness started, SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()



def ensure_ovs(install: bool) -> str | None:
    """``None`` when Open vSwitch's daemons are here (installing them if allowed), else why
    not."""
    if shutil.which("ovs-vswitchd") and OVS_SCHEMA.exists():
        return None
    if not install:
        return "openvswitch-switch is not installed (--no-install)"
    if os.geteuid() != 0:
        return "openvswitch-switch is not installed, and installing it needs root"
    if not shutil.which("apt-get"):
        return "openvswitch-switch is not installed, and there is no apt-get"
    print("installing openvswitch-switch with apt-get", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 "openvswitch-switch"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    if not shutil.which("ovs-vswitchd") or not OVS_SCHEMA.exists():
        return "apt-get installed openvswitch-switch but ovs-vswitchd or its schema is missing"
    return None


class Ovs:
    """ovsdb-server and ovs-vswitchd in namespace ``ns``, on a private db and run dir under
    ``tmp``; processes started by ``start`` (a harness's starter, which pins them)."""

    def __init__(self, ns: str, tmp: Path, core: int, starter: Starter) -> None:
        self.ns, self.dir, self.core, self.starter = ns, tmp / "ovs", core, starter
        self.dir.mkdir()
        self.db = f"unix:{self.dir / 'db.sock'}"
        self.env = dict(os.environ, OVS_RUNDIR=str(self.dir), OVS_LOGDIR=str(self.dir),
                        OVS_DBDIR=str(self.dir), OVS_SYSCONFDIR=str(self.dir),
                        OVS_PKGDATADIR="/usr/share/openvswitch")
        self.procs: list[subprocess.Popen] = []

    def _tool(self, tool: str, *args: str, timeout: float = 20) -> str:
        return sh("ip", "netns", "exec", self.ns, "env", *(f"{k}={self.env[k]}" for k in (
            "OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR")), tool, *args,
            timeout=timeout + 10)

    def vsctl(self, *args: str, timeout: float = 20) -> str:
        return self._tool("ovs-vsctl", f"--db={self.db}", f"--timeout={int(timeout)}", *args,
                          timeout=timeout)

    def ofctl(self, *args: str, timeout: float = 20) -> str:
        """``ovs-ofctl`` on a bridge of this ovs-vswitchd (its management socket)."""
        return self._tool("ovs-ofctl", *args, timeout=timeout)

    def start(self) -> None:
        conf = self.dir / "conf.db"
        sh("ovsdb-tool", "create", str(conf), str(OVS_SCHEMA))
        log = self.dir / "ovsdb-server.out"
        db = self.starter(self.ns, [
            "ovsdb-server", str(conf), f"--remote=punix:{self.dir / 'db.sock'}",
            f"--unixctl={self.dir / 'ovsdb-server.ctl'}", f"--log-file={self.dir}/ovsdb.log",
            f"--pidfile={self.dir}/ovsdb-server.pid"], self.core, log, self.env)
        self.procs.append(db)
        wait_until(lambda: (self.dir / "db.sock").exists(), READY_TIMEOUT, "ovsdb-server", db,
                   log)
        self.vsctl("--no-wait", "init")
        log = self.dir / "ovs-vswitchd.out"
        vswitchd = self.starter(self.ns, [
            "ovs-vswitchd", self.db, f"--unixctl={self.dir / 'ovs-vswitchd.ctl'}",
            f"--log-file={self.dir}/ovs-vswitchd.log",
            f"--pidfile={self.dir}/ovs-vswitchd.pid"], self.core, log, self.env)
        self.procs.append(vswitchd)
        wait_until(lambda: (self.dir / "ovs-vswitchd.ctl").exists(), READY_TIMEOUT,
                   "ovs-vswitchd", vswitchd, log)

    def bridge(self, name: str, datapath: str, ports: dict[str, int | None],
               settings: tuple[str, ...] = ("fail_mode=standalone",)) -> None:
        """Bridge ``name`` of ``datapath`` type with ``ports`` (interface -> the OpenFlow
        port number asked for, or None) and the bridge ``settings``; raises with OVS's
        reason if a port did not come up."""
        cmd = ["--may-exist", "add-br", name, "--", "set", "bridge", name,
               f"datapath_type={datapath}", *settings]
        for port, number in ports.items():
            cmd += ["--", "--may-exist", "add-port", name, port]
            if number is not None:
                cmd += ["--", "set", "interface", port, f"ofport_request={number}"]
        self.vsctl(*cmd)
        for port in ports:
            ofport = self.vsctl("get", "interface", port, "ofport").strip()
            if ofport in ("-1", "[]", "0"):
                error = self.vsctl("get", "interface", port, "error").strip().strip('"')
                raise BenchError(f"port {port} did not come up on the {datapath} datapath"
                                 f"{': ' + error if error not in ('', '[]') else ''}; "
                                 f"ovs-vswitchd: {self._errors()}")

    def _errors(self) -> str:
        log = self.dir / "ovs-vswitchd.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        errors = [line.rsplit("|", 1)[-1].strip() for line in lines if "|ERR|" in line]
        return "; ".join(errors[:2]) or "no error logged"

    def delete_bridge(self, name: str) -> None:
        self.vsctl("--if-exists", "del-br", name)

    def version(self) -> str | None:
        """``3.1.0``, from ``ovs-vswitchd --version``."""
        out = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[:1]
        return out[0].split()[-1] if out else None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
