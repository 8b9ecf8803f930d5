"""Introduced domains on their shared-memory rings: a hypervisor process, the daemon run
with ``--xen-hypervisor``, dom0's tools as the toolstack (Debian's xenstore-utils, and
``INTRODUCE``/``RELEASE`` on the daemon's socket), and a guest *process* that finds its ring
from its parameters and talks over it, held to its permissions, watched, reconnected."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from appliance_util import PYTHON, ROOT, Lines, LoggedProcess, wait_until
from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient
from fata.xen.hypervisor import HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN
from fata.xen.xs_wire import Message, MessageReader, Op
from test_xs_appliance import RunningXenstore

pytestmark = pytest.mark.tool("xenstore-write")
GUEST = Path(__file__).with_name("ring_guest.py")


def python() -> str:
    return str(PYTHON) if PYTHON.exists() else sys.executable


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "core"))


class RunningHypervisor(LoggedProcess):
    def __init__(self, tmp: Path) -> None:
        self.socket = tmp / "hv" / "socket"
        self.log = tmp / "hypervisor.log"
        self.proc = subprocess.Popen(
            [python(), "-m", "fata.platform.xen_hypervisor", "--socket", str(self.socket)],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env())
        wait_until(lambda: "listening" in self.output(), 30, "the hypervisor", self.output)


def ask(path: Path, op: int, *parts: bytes) -> str:
    """One request on the daemon's socket, as a toolstack's libxenstore would send it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(Message(op, 1, 0, b"".join(p + b"\0" for p in parts)).encode())
        reader = MessageReader()
        while True:
            for msg in reader.feed(sock.recv(65536)):
                if msg.op != Op.WATCH_EVENT:
                    text = msg.payload.rstrip(b"\0").decode()
                    return f"error {text}" if msg.op == Op.ERROR else text


class Guest:
    def __init__(self, handle: socket.socket) -> None:
        fd = handle.detach()
        self.proc = subprocess.Popen(
            [python(), str(GUEST)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, pass_fds=(fd,), env=dict(env(), **{DOMAIN_FD_ENV: str(fd)}))
        os.close(fd)
        self.lines = Lines(self.proc.stdout)

    def step(self) -> dict:
        line = self.lines.next(60, "step of the guest")
        assert line, f"the guest ended: {self.proc.wait(10)} {self.proc.stderr.read()}"
        return json.loads(line)


@pytest.fixture()
def platform(tmp_path: Path):
    hv = RunningHypervisor(tmp_path)
    daemon = RunningXenstore(tmp_path, tmp_path / "store",
                             ("--xen-hypervisor", str(hv.socket)))
    yield hv, daemon
    daemon.stop()
    hv.stop()


def build_domain(hv: RunningHypervisor, name: str) -> tuple[HypervisorClient, int, int,
                                                             socket.socket]:
    """What a domain builder does: the domain, its xenstore page and unbound port, its
    parameters saying where they are."""

    async def build() -> tuple[HypervisorClient, int, int, socket.socket]:
        dom0 = await HypervisorClient.connect(str(hv.socket))
        domid, handle = await dom0.create_domain(name, pages=4)
        port = await dom0.alloc_unbound(domid, 0)
        await dom0.set_param(domid, HVM_PARAM_STORE_PFN, 1)
        await dom0.set_param(domid, HVM_PARAM_STORE_EVTCHN, port)
        return dom0, domid, port, handle

    return asyncio.run(build())


def test_a_guest_domain_is_served_on_its_ring(platform) -> None:
    hv, daemon = platform
    _, domid, port, handle = build_domain(hv, "guest1")
    home = f"/local/domain/{domid}"
    daemon.tool("xenstore-write", "/local/domain/0/secret", "dom0 only",
                f"{home}/name", "guest1", f"{home}/control/shutdown", "")
    daemon.tool("xenstore-chmod", "-r", home, f"n{domid}")
    assert ask(daemon.socket, Op.INTRODUCE, b"%d" % domid, b"1", b"%d" % port) == "OK"
    assert ask(daemon.socket, Op.IS_DOMAIN_INTRODUCED, b"%d" % domid) == "T"
    guest = Guest(handle)
    expected = [
        ("domid", domid), ("home", home), ("features", 3), ("write", "OK"),
        ("read", "from the guest"), ("peek", "error EACCES"), ("trespass", "error EACCES"),
        ("quota", "error EACCES"), ("watch", "OK"),
        ("event", ["control/shutdown", "sd"]), ("waiting", None)]
    for step, value in expected:
        got = guest.step()
        assert (got["step"], got.get("value")) == (step, value)
    daemon.tool("xenstore-write", f"{home}/control/shutdown", "poweroff")
    for step, value in [("event", ["control/shutdown", "sd"]), ("shutdown", "poweroff"),
                        ("reconnected", "from the guest"), ("unwatch", "error ENOENT")]:
        got = guest.step()
        assert (got["step"], got.get("value")) == (step, value)
    assert guest.proc.wait(30) == 0, guest.proc.stderr.read()
    assert daemon.tool("xenstore-read", f"{home}/data/x").stdout == "from the guest\n"
    assert ask(daemon.socket, Op.RELEASE, b"%d" % domid) == "OK"
    assert ask(daemon.socket, Op.IS_DOMAIN_INTRODUCED, b"%d" % domid) == "F"
    assert f"domain {domid} introduced" in daemon.output()


def test_introducing_a_page_or_port_that_is_not_there_is_einval(platform) -> None:
    hv, daemon = platform
    _, domid, port, handle = build_domain(hv, "guest2")
    assert ask(daemon.socket, Op.INTRODUCE, b"%d" % domid, b"99", b"%d" % port) == \
        "error EINVAL"  # the domain has 4 pages
    assert ask(daemon.socket, Op.INTRODUCE, b"%d" % domid, b"1", b"77") == "error EINVAL"
    assert ask(daemon.socket, Op.INTRODUCE, b"4242", b"1", b"1") == "error EINVAL"
    assert ask(daemon.socket, Op.IS_DOMAIN_INTRODUCED, b"%d" % domid) == "F"
    assert ask(daemon.socket, Op.INTRODUCE, b"%d" % domid, b"1", b"%d" % port) == "OK"
    daemon.tool("xenstore-write", "/still/serving", "yes")
    handle.close()
