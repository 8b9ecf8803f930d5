"""Bulk TCP through an impaired link: loss, reordering, duplication, delay.

Topology: stack ─TAP─ [bridge namespace] ─veth─ host namespace (Linux, same subnet).  A
user-space bridge (``_impair.py``) copies frames between the TAP and the veth.  Where the
kernel has sch_netem, ``tc netem`` on both bridge-side egresses does the impairing and the
bridge only copies; on kernels without netem (this project's CI VM is one) the bridge
applies the same impairments itself.  Both directions (data and ACKs) are impaired.

The TAP runs without offloads and the host's veth without TSO/GSO/checksum offload so
that every impaired unit is one MSS-sized packet with a real checksum, as on a wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ._netns import PYTHON, Lab, needs_tap, sh
from ._services import PEER_BULK, serve_all

pytestmark = [*needs_tap, pytest.mark.skipif(shutil.which("ethtool") is None,
                                             reason="needs ethtool")]

SIZE = int(os.environ.get("FATA_NETEM_BYTES", 4 * 1024 * 1024))
IMPAIR = str(Path(__file__).with_name("_impair.py"))


def _kernel_netem() -> bool:
    ns = f"fatanq{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], capture_output=True)
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo",
                               "root", "netem", "delay", "1ms"], capture_output=True)
        return done.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def lab():
    lab = Lab("nem", bridged=True)
    lab.create()
    sh("ip", "netns", "exec", lab.host, "ethtool", "-K", "vh", "tso", "off", "gso", "off",
       "tx", "off")
    sh("ip", "netns", "exec", lab.router, "ethtool", "-K", "vr", "gro", "off")
    lab.kernel_netem = _kernel_netem()  # type: ignore[attr-defined]
    yield lab
    lab.destroy()


@contextlib.asynccontextmanager
async def impaired(lab: Lab, *, loss: float = 0, delay: float = 0, reorder: float = 0,
                   duplicate: float = 0) -> AsyncIterator[None]:
    args: list[str] = []
    if lab.kernel_netem:  # type: ignore[attr-defined]
        spec = ["delay", f"{delay * 1000:.0f}ms", "reorder", f"{reorder * 100:.0f}%",
                "duplicate", f"{duplicate * 100:.0f}%", "loss", f"{loss * 100:.0f}%"]
        for dev in ("vr", lab.tap_name):
            sh("ip", "netns", "exec", lab.router, "tc", "qdisc", "replace", "dev", dev, "root",
               "netem", *spec, "limit", "10000")
    else:
        args = [f"--loss={loss}", f"--delay={delay}", f"--reorder={reorder}",
                f"--duplicate={duplicate}"]
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", lab.router, PYTHON, IMPAIR, lab.tap_name, "vr", *args,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    try:
        yield
    finally:
        proc.kill()
        await proc.wait()


def bulk(lab: Lab, size: int, **impairment: float) -> None:
    async def main() -> None:
        async with lab.stack(offload=False) as stack, impaired(lab, **impairment):
            await serve_all(stack)
            up = await lab.python(PEER_BULK, "up", lab.app_ip, str(size), "5", timeout=150)
            down = await lab.python(PEER_BULK, "down", lab.app_ip, str(size), "6", timeout=150)
            stats = stack.stats()
            print(f"{impairment} {size} bytes: up {float(up.split()[1]):.1f} "
                  f"down {float(down.split()[1]):.1f} Mbit/s; "
                  f"retransmits {stats.get('tcp_retransmits', 0)} "
                  f"timeouts {stats.get('tcp_timeouts', 0)} "
                  f"fast {stats.get('tcp_fast_retransmits', 0)} "
                  f"ooo {stats.get('tcp_out_of_order', 0)}")
            assert up.split()[0] == "True", up
            assert down.split()[0] == "True", down
            assert stats.get("internal_errors", 0) == 0
    asyncio.run(main())


def test_clean_bridge(lab: Lab) -> None:
    bulk(lab, SIZE)


def test_loss_10_percent(lab: Lab) -> None:
    bulk(lab, SIZE // 2, loss=0.10)


def test_reordering_and_duplication(lab: Lab) -> None:
    bulk(lab, SIZE, delay=0.005, reorder=0.25, duplicate=0.05)


def test_delay_50ms_round_trip(lab: Lab) -> None:
    bulk(lab, SIZE, delay=0.025)


def test_everything_at_once(lab: Lab) -> None:
    bulk(lab, SIZE // 8, loss=0.10, delay=0.025, reorder=0.25, duplicate=0.05)
