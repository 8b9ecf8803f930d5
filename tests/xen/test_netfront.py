"""The Xen platform's network path end to end, as processes: a hypervisor, the xenstore
daemon serving rings, a netback owning the TAP in a network namespace, a toolstack (this
test) building a guest domain and its vif, and the DNS appliance as that guest on
``--net direct --netif stack=xen:0``: Fata's TCP/IP on netfront.  ``dig`` in the namespace
gets answers over UDP and TCP, through the rings alone; the backend is killed mid-stream
and the frontend notices through xenstore and connects to a new one; the guest is killed
and the backend notices and lets its TAP go."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from appliance_util import ROOT, LoggedProcess, wait_until
from fata.platform.local_unix import UnixLocalSockets
from fata.platform.unix import UnixConsole
from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient
from fata.platform.xen_toolstack import add_vif, build_guest, destroy_guest, domains
from fata.xen.xenbus import XenbusState, read_state
from fata.xen.xs_client import XenstoreClient
from xen_util import Process, python

pytestmark = [pytest.mark.root, pytest.mark.tool("ip", "dig", "ping", "xenstore-write"),
              pytest.mark.skipif(not os.path.exists("/dev/net/tun"),
                                 reason="needs /dev/net/tun")]
NS = "fataxen"
HOST, GUEST = "10.79.0.1", "10.79.0.2"


def ns(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", "netns", "exec", NS, *argv], capture_output=True, text=True,
                          timeout=60)
    assert not check or done.returncode == 0, (argv, done.stdout, done.stderr)
    return done


@pytest.fixture()
def platform(tmp_path: Path):
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    started: list[LoggedProcess] = []
    try:
        hv = Process(tmp_path, "hypervisor", [python(), "-m", "fata.platform.xen_hypervisor",
                                              "--socket", str(tmp_path / "hv" / "socket")],
                     "listening")
        started.append(hv)
        xs_socket = tmp_path / "xs" / "socket"
        xs_socket.parent.mkdir()
        xsd = Process(tmp_path, "xenstored", [
            python(), "-m", "fata", "run", str(ROOT / "appliances" / "xenstore_stub"),
            "--xen-hypervisor", str(tmp_path / "hv" / "socket"), "--", "--socket",
            str(xs_socket), "--store", str(tmp_path / "store")], "serving")
        started.append(xsd)
        netback = start_netback(tmp_path, tmp_path / "hv" / "socket", xs_socket)
        started.append(netback)
        yield tmp_path, tmp_path / "hv" / "socket", xs_socket, netback, started
    finally:
        for proc in reversed(started):
            proc.stop()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def start_guest(tmp: Path, handle, name: str) -> Process:
    fd = handle.detach()
    try:
        return Process(tmp, name, [
            python(), "-m", "fata", "run", str(ROOT / "appliances" / "dns"), "--net", "direct",
            "--netif", "stack=xen:0", "--ipv4", f"{GUEST}/24", "--", "--listen", GUEST,
            "--port", "53"], "serving", pass_fds=(fd,), extra_env={DOMAIN_FD_ENV: str(fd)})
    finally:
        os.close(fd)


async def until_state(xs: XenstoreClient, directory: str, state: XenbusState) -> None:
    async with await xs.subscribe(f"{directory}/state") as sub:
        while await read_state(xs, directory) != state:
            await sub.next()


def start_netback(tmp: Path, hv_path: Path, xs_path: Path) -> Process:
    return Process(tmp, f"netback-{len(list(tmp.glob('netback*.log')))}", [
        "ip", "netns", "exec", NS, python(), "-m", "fata.platform.xen_netback",
        "--xen-hypervisor", str(hv_path), "--xenstore", str(xs_path)], "netback serving")


def test_dig_answers_through_netfront_and_netback(platform) -> None:
    tmp, hv_path, xs_path, netback, started = platform

    async def toolstack() -> None:
        xen = await HypervisorClient.connect(str(hv_path))
        flow = await UnixLocalSockets(UnixConsole("toolstack")).connect(str(xs_path))
        async with XenstoreClient(flow) as xs:
            guest = await build_guest(xen, xs, "dns1")
            vif = await add_vif(xs, guest.domid, 0)
            tap = f"vif{guest.domid}.0"
            await asyncio.to_thread(wait_until, lambda: ns("ip", "link", "show", tap,
                                                           check=False).returncode == 0,
                                    30, f"TAP {tap}", netback.output)
            ns("ip", "addr", "add", f"{HOST}/24", "dev", tap)
            ns("ip", "link", "set", tap, "up")
            proc = await asyncio.to_thread(start_guest, tmp, guest.handle, "guest1")
            try:
                assert await read_state(xs, vif.backend) == XenbusState.CONNECTED
                assert await read_state(xs, vif.frontend) == XenbusState.CONNECTED
                for extra in ([], ["+tcp"]):
                    out = ns("dig", *extra, "+time=2", "+tries=3", f"@{GUEST}",
                             "example.org", "SOA").stdout
                    assert "status: NOERROR" in out and "ns1.example.org." in out, out
                pings = ns("ping", "-c", "20", "-i", "0.01", "-s", "1400", GUEST).stdout
                assert " 0% packet loss" in pings, pings
                # the backend dies mid-stream: the toolstack removes its directory, the
                # frontend notices and closes; a new netback serves the device again and
                # the guest, never restarted, answers through it
                netback.proc.kill()
                netback.proc.wait(10)
                await xs.rm(vif.backend)
                await asyncio.wait_for(until_state(xs, vif.frontend, XenbusState.CLOSED), 30)
                await add_vif(xs, guest.domid, 0)
                again = await asyncio.to_thread(start_netback, tmp, hv_path, xs_path)
                started.append(again)
                await asyncio.to_thread(wait_until, lambda: ns("ip", "link", "show", tap,
                                                               check=False).returncode == 0,
                                        30, f"TAP {tap} again", again.output)
                ns("ip", "addr", "add", f"{HOST}/24", "dev", tap)
                ns("ip", "link", "set", tap, "up")
                await asyncio.wait_for(until_state(xs, vif.backend, XenbusState.CONNECTED), 30)
                out = ns("dig", "+time=2", "+tries=5", f"@{GUEST}", "example.org", "SOA",
                         check=False).stdout
                assert "status: NOERROR" in out, out + proc.output() + again.output()
                assert (guest.domid, "dns1") in await domains(xs)
            finally:
                proc.proc.kill()
                proc.proc.wait(10)
            # the guest is gone: the toolstack cleans up, the backend notices and lets go
            await destroy_guest(xen, xs, guest.domid)
            await asyncio.to_thread(wait_until, lambda: ns("ip", "link", "show", tap,
                                                           check=False).returncode != 0,
                                    30, f"TAP {tap} gone", netback.output)
            assert guest.domid not in [d for d, _ in await domains(xs)]
        await xen.close()
    asyncio.run(asyncio.wait_for(toolstack(), 240))
