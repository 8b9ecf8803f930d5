"""The switch appliance end to end: two Linux hosts talk through it.

Each host is a network namespace joined by a veth pair to a third namespace, where ``fata
run --key ports=2 appliances/openflow_switch`` holds the other ends as its two ports
(``--netif port1=if:IF``).  The situations: no controller and ``--fail-mode standalone``
(the MAC-learning fallback switches); a real os-ken controller (``osken_l2_app.py``, on a
loopback port in the switch's namespace) that installs the flows the pings and a TCP
transfer then take, its log showing the PACKET_INs; ``--fail-mode secure`` with no
controller, where nothing may pass; a TLS channel to os-ken, checked against the CA; and
the appliance's controller role driving this switch (OpenFlow 1.3) and Open vSwitch
(OpenFlow 1.0).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from net._bulk import transfer

pytestmark = [
    pytest.mark.root, pytest.mark.tool("ip", "ping"),
]
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPLIANCE = REPO / "appliances" / "openflow_switch"
H1_IP, H2_IP = "10.242.0.1", "10.242.0.2"
TIMEOUT = 30.0
BULK = 8 * 1024 * 1024


def sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")


class Log:
    """A process's stderr, read line by line as it comes, so a test can wait for a line."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def wait(self, text: str, timeout: float = TIMEOUT) -> None:
        """Until a line contains ``text``; fails with the log after ``timeout`` or EOF."""
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                assert not self._task.done(), f"exited before {text!r}: {self.text}"
                self._changed.clear()
                await self._changed.wait()

    async def finish(self) -> None:
        await self._task


@contextlib.asynccontextmanager
async def process(ns: str, *cmd: str, env: dict[str, str] | None = None
                  ) -> AsyncIterator[tuple[asyncio.subprocess.Process, Log]]:
    """``cmd`` in ``ns`` with its stderr watched; SIGTERM at the end, then the rest read."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, *cmd, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=str(REPO))
    assert proc.stderr is not None
    log = Log(proc.stderr)
    try:
        yield proc, log
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(log.finish(), 30)


@contextlib.asynccontextmanager
async def switch(ns: str, *args: str) -> AsyncIterator[Log]:
    """The appliance, once it says its ports are up; checks it stopped cleanly."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), str(APPLIANCE), os.environ.get("PYTHONPATH", "")]))
    async with process(ns, sys.executable, "-m", "fata", "run", "--key", "ports=2", str(APPLIANCE),
                       "--netif", "port1=if:s1", "--netif", "port2=if:s2", "--", *args,
                       env=env) as (proc, log):
        await log.wait("switch up:", 120)  # the first run builds the image
        assert ", ports 1=s1, 2=s2, fail mode" in log.text, log.text  # built with two
        yield log
    assert proc.returncode == 0, log.text
    assert "switch down:" in log.text, log.text


async def ping(ns: str, target: str, count: int) -> tuple[int, str]:
    """``count`` pings a fifth of a second apart, each waited on for at most a second."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1", target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.fixture
def lab():
    tag = os.getpid() % 100000
    names = {"h1": f"ofh1{tag}", "h2": f"ofh2{tag}", "sw": f"ofsw{tag}"}
    for ns in names.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        # No IPv6: its router solicitations would be packet-ins no ping caused.
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")
    h1, h2, sw = names["h1"], names["h2"], names["sw"]
    sh("ip", "-n", h1, "link", "add", "e0", "type", "veth", "peer", "name", "s1", "netns", sw)
    sh("ip", "-n", h2, "link", "add", "e0", "type", "veth", "peer", "name", "s2", "netns", sw)
    sh("ip", "-n", h1, "addr", "add", f"{H1_IP}/24", "dev", "e0")
    sh("ip", "-n", h2, "addr", "add", f"{H2_IP}/24", "dev", "e0")
    for ns, dev in ((h1, "e0"), (h2, "e0"), (sw, "s1"), (sw, "s2")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
    yield names
    for ns in names.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_standalone_without_controller_switches_by_learning(lab: dict[str, str]) -> None:
    async def main() -> None:
        # Nothing listens on the controller port: the switch keeps retrying, and switches.
        async with switch(lab["sw"], "--controller", "127.0.0.1:1", "--fail-mode",
                          "standalone") as log:
            code, out = await ping(lab["h1"], H2_IP, 3)
            assert code == 0 and " 0% packet loss" in out, out
        assert "0 controller connections" in log.text, log.text
        assert " 0 flooded" not in log.text, log.text  # the first ARP request was flooded
    asyncio.run(main())


def test_secure_without_controller_drops_everything(lab: dict[str, str]) -> None:
    async def main() -> None:
        async with switch(lab["sw"], "--controller", "127.0.0.1:1", "--fail-mode",
                          "secure") as log:
            code, out = await ping(lab["h1"], H2_IP, 3)
            assert code != 0 and "100% packet loss" in out, out
        # The frames did reach the switch's pipeline, which had no flow for them.
        assert "pipeline 0 frames in" not in log.text, log.text
        assert ", 0 out;" in log.text, log.text
    asyncio.run(main())


def test_osken_controller_installs_the_flows_pings_take(lab: dict[str, str]) -> None:
    pytest.importorskip("os_ken", reason="os-ken is the controller: pip install -e "
                        "'appliances/openflow_switch[test]'")
    port = 20000 + os.getpid() % 20000

    async def main() -> None:
        async with process(lab["sw"], sys.executable, "-u", str(HERE / "osken_l2_app.py"),
                           "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port",
                           str(port)) as (_, controller):
            async with switch(lab["sw"], "--controller", f"127.0.0.1:{port}",
                              "--reconnect-min", "0.1", "--reconnect-max", "0.5") as log:
                await log.wait(f"controller 127.0.0.1:{port} connected (OpenFlow 0x04)")
                await controller.wait("table-miss installed")
                code, out = await ping(lab["h1"], H2_IP, 3)
                assert code == 0 and " 0% packet loss" in out, out
                await controller.wait("flow installed port 1")
                await controller.wait("flow installed port 2")
                assert "packet-in port 1" in controller.text, controller.text
                assert "packet-in port 2" in controller.text, controller.text
                # Now the flows carry the pings: not one more reaches the controller.
                before = controller.text.count("packet-in port")
                code, out = await ping(lab["h1"], H2_IP, 5)
                assert code == 0 and " 0% packet loss" in out, out
                assert controller.text.count("packet-in port") == before, controller.text
                # And a TCP transfer, the hosts' offloads on (TSO segments, partial
                # checksums, finished by the ports), every byte checked at the far end.
                await transfer(lab["h2"], H2_IP, lab["h1"], BULK)
            assert "1 controller connections" in log.text, log.text
    asyncio.run(main())


@contextlib.asynccontextmanager
async def fata_controller(ns: str, port: int) -> AsyncIterator[Log]:
    """The appliance built as the learning-switch controller, listening on ``port``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), str(APPLIANCE), os.environ.get("PYTHONPATH", "")]))
    async with process(ns, sys.executable, "-m", "fata", "run", "--key", "role=controller",
                       str(APPLIANCE), "--", "--port", str(port), env=env) as (proc, log):
        await log.wait("controller up:", 120)
        yield log
    assert proc.returncode == 0, log.text
    assert "controller down:" in log.text, log.text


def test_fata_controller_drives_the_fata_switch(lab: dict[str, str]) -> None:
    """The two roles of one appliance directory: the controller (OpenFlow 1.3 agreed with
    the switch) installs the flows the pings then take."""
    port = 20000 + os.getpid() % 20000

    async def main() -> None:
        async with fata_controller(lab["sw"], port) as controller:
            async with switch(lab["sw"], "--controller", f"127.0.0.1:{port}",
                              "--reconnect-min", "0.1", "--reconnect-max", "0.5") as log:
                await log.wait(f"controller 127.0.0.1:{port} connected (OpenFlow 0x04)")
                await controller.wait("(OpenFlow 0x04)")
                code, out = await ping(lab["h1"], H2_IP, 5)
                assert code == 0 and " 0% packet loss" in out, out
        # h1's ARP request flooded, h2's reply and each echo one way: flows in both directions
        line = next(x for x in controller.lines if "controller down:" in x)
        installed = int(line.split(" flows installed")[0].rsplit(" ", 1)[-1])
        assert installed >= 2 and " 0 floods" not in line, line
        assert "left: closed by the switch" in controller.text, controller.text
    asyncio.run(main())


@pytest.mark.tool("ovs-vswitchd", "ovsdb-server")
def test_fata_controller_drives_open_vswitch_over_openflow_10(lab: dict[str, str],
                                                             tmp_path: Path) -> None:
    """The controller with a switch nobody here wrote, speaking only OpenFlow 1.0: Open
    vSwitch's userspace datapath on the same two ports, fail-secure (nothing passes without
    the controller's flows)."""
    sys.path.insert(0, str(APPLIANCE / "bench"))
    from ovs_daemons import Ovs, start_in

    port = 20000 + os.getpid() % 20000

    for dev in ("s1", "s2"):  # a userspace switch forwards what the veth left unsummed
        sh("ip", "netns", "exec", lab["sw"], "ethtool", "-K", dev, "tx", "off")
    for host in ("h1", "h2"):
        sh("ip", "netns", "exec", lab[host], "ethtool", "-K", "e0", "tx", "off")

    async def main() -> None:
        async with fata_controller(lab["sw"], port) as controller:
            ovs = Ovs(lab["sw"], tmp_path, os.sched_getaffinity(0).pop(), start_in)
            try:
                ovs.start()
                ovs.bridge("br0", "netdev", {"s1": 1, "s2": 2},
                           ("fail_mode=secure", "protocols=OpenFlow10"))
                ovs.vsctl("set-controller", "br0", f"tcp:127.0.0.1:{port}")
                await controller.wait("(OpenFlow 0x01)")
                code, out = await ping(lab["h1"], H2_IP, 5)
                assert code == 0 and " 0% packet loss" in out, out
                flows = ovs.ofctl("-O", "OpenFlow10", "dump-flows", "br0")
                assert "dl_dst=" in flows and "actions=output:" in flows, flows
            finally:
                ovs.stop()
        line = next(x for x in controller.lines if "controller down:" in x)
        assert " 0 flows installed" not in line, line
    asyncio.run(main())


def test_a_tls_channel_to_os_ken_checked_against_the_ca(lab: dict[str, str],
                                                       tmp_path: Path) -> None:
    """``--controller tls:H:P --ca FILE``: Fata's TLS engine under the channel, os-ken's SSL
    listener (Python's ssl module) on the other side.  With the controller's CA the switch
    connects and the pings pass; with another CA the handshake fails, so nothing passes."""
    pytest.importorskip("os_ken", reason="os-ken is the controller: pip install -e "
                        "'appliances/openflow_switch[test]'")
    from tls._certgen import make_pki

    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other")
    port = 20000 + os.getpid() % 20000

    async def main() -> None:
        async with process(lab["sw"], sys.executable, "-u", str(HERE / "osken_l2_app.py"),
                           "--ofp-listen-host", "127.0.0.1", "--ofp-ssl-listen-port", str(port),
                           "--ctl-privkey", str(pki["p256.key"]), "--ctl-cert",
                           str(pki["p256"])) as (_, controller):
            async with switch(lab["sw"], "--controller", f"tls:127.0.0.1:{port}", "--ca",
                              str(other["ca"]), "--fail-mode", "secure", "--reconnect-min",
                              "0.1", "--reconnect-max", "0.2") as log:
                code, out = await ping(lab["h1"], H2_IP, 3)
                assert code != 0 and "100% packet loss" in out, out
            assert "connected (OpenFlow" not in log.text, log.text
            assert "joined" not in controller.text, controller.text
            async with switch(lab["sw"], "--controller", f"tls:127.0.0.1:{port}", "--ca",
                              str(pki["ca"]), "--reconnect-min", "0.1",
                              "--reconnect-max", "0.5") as log:
                await log.wait(f"controller tls:127.0.0.1:{port} connected (OpenFlow 0x04)")
                await controller.wait("table-miss installed")
                code, out = await ping(lab["h1"], H2_IP, 3)
                assert code == 0 and " 0% packet loss" in out, out
                await controller.wait("flow installed port 1")
    asyncio.run(main())
