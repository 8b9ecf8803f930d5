"""The toolstack's part of the Xen platform (what ``libxl`` does on Xen): build a guest
domain, introduce it to xenstore, give it vifs and vbds, list and destroy domains.

Domain 0 runs it, with a hypervisor connection and a privileged xenstore connection.  A
guest is built as Xen's domain builders build one: the domain with its memory, page 1 for
its xenstore ring and an event-channel port unbound for domain 0, both named in its
parameters (``HVM_PARAM_STORE_PFN``/``STORE_EVTCHN``), then ``INTRODUCE`` so that the daemon
serves that ring.  Its home ``/local/domain/<domid>`` is domain 0's and readable by the
guest, with ``name`` and ``domid``; ``device``, ``data`` and ``control`` below it are the
guest's own.  Page 2 is its console (``HVM_PARAM_CONSOLE_PFN``/``CONSOLE_EVTCHN``, and
``console/ring-ref``, ``console/port`` for the console daemon).  What the guest runs is
the caller's: the socket returned is its hypervisor connection, handed to its process as
``FATA_XEN_DOMAIN_FD``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from fata.platform.xen_host import HypervisorClient
from fata.xen.hypervisor import (
    HVM_PARAM_CONSOLE_EVTCHN,
    HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_STORE_EVTCHN,
    HVM_PARAM_STORE_PFN,
)
from fata.xen.xenbus import Device, create_device
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError

STORE_PFN = 1
CONSOLE_PFN = 2  # the PV console page (console.h), as Xen's domain builders place it
GUEST_DIRS = ("device", "data", "control")


@dataclass
class Guest:
    """A built guest: its domain id, name, and its end of the hypervisor connection."""

    domid: int
    name: str
    handle: socket.socket


async def build_guest(xen: HypervisorClient, xs: XenstoreClient, name: str,
                      pages: int = 16) -> Guest:
    """A new guest domain, introduced to xenstore and served on its ring."""
    domid, handle = await xen.create_domain(name, pages=pages)
    try:
        port = await xen.alloc_unbound(domid, 0)
        await xen.set_param(domid, HVM_PARAM_STORE_PFN, STORE_PFN)
        await xen.set_param(domid, HVM_PARAM_STORE_EVTCHN, port)
        console_port = await xen.alloc_unbound(domid, 0)
        await xen.set_param(domid, HVM_PARAM_CONSOLE_PFN, CONSOLE_PFN)
        await xen.set_param(domid, HVM_PARAM_CONSOLE_EVTCHN, console_port)
        home = f"/local/domain/{domid}"

        async def layout(tx: int) -> None:
            await xs.write(f"{home}/name", name, tx=tx)
            await xs.write(f"{home}/domid", str(domid), tx=tx)
            for path in (home, f"{home}/name", f"{home}/domid"):
                await xs.set_perms(path, ["n0", f"r{domid}"], tx=tx)
            for sub in GUEST_DIRS:
                await xs.mkdir(f"{home}/{sub}", tx=tx)
                await xs.set_perms(f"{home}/{sub}", [f"n{domid}"], tx=tx)
            for key, value in (("ring-ref", CONSOLE_PFN), ("port", console_port),
                               ("type", "xenconsoled")):  # where xenconsoled looks
                await xs.write(f"{home}/console/{key}", str(value), tx=tx)
        await xs.transaction(layout)
        await xs.introduce(domid, STORE_PFN, port)
    except BaseException:
        handle.close()
        await xen.destroy_domain(domid)
        raise
    return Guest(domid, name, handle)


def guest_mac(domid: int, devid: int) -> str:
    """A locally administered unicast MAC for a guest's vif (Xen's own OUI is 00:16:3e;
    this stays out of every vendor's space)."""
    return f"02:fa:{(domid >> 8) & 0xFF:02x}:{domid & 0xFF:02x}:00:{devid & 0xFF:02x}"


async def add_vif(xs: XenstoreClient, domid: int, devid: int = 0, backend: int = 0,
                  mac: str | None = None) -> Device:
    """Give guest ``domid`` vif ``devid`` served by ``backend``'s netback."""
    device = Device("vif", domid, backend, devid)
    mac = mac or guest_mac(domid, devid)
    both = {"mac": mac, "handle": str(devid)}
    await create_device(xs, device, frontend=both, backend=both)
    return device


async def add_vbd(xs: XenstoreClient, domid: int, devid: int, path: str,
                  readonly: bool = False, backend: int = 0) -> Device:
    """Give guest ``domid`` virtual disk ``devid``: the file ``path`` on ``backend``'s
    blkback.  As libxl writes a disk, the backend's directory names the file (``params``)
    and the access (``mode``, ``r`` or ``w``), out of the guest's reach (the directory is
    the backend's, readable by the guest); the frontend's names the virtual device."""
    device = Device("vbd", domid, backend, devid)
    await create_device(
        xs, device,
        frontend={"virtual-device": str(devid), "device-type": "disk"},
        backend={"params": path, "mode": "r" if readonly else "w", "type": "file",
                 "device-type": "disk", "handle": str(devid)})
    return device


async def destroy_guest(xen: HypervisorClient, xs: XenstoreClient, domid: int) -> None:
    """The guest is gone: its backends' directories, its home, its domain."""
    async def cleanup(tx: int) -> None:
        for backend in await _backends_of(xs, domid, tx):
            await xs.rm(backend, tx=tx)
        await xs.rm(f"/local/domain/{domid}", tx=tx)
    await xs.transaction(cleanup)
    try:
        await xs.release(domid)
    except XenstoreError as exc:
        if exc.code != "ENOENT":
            raise
    await xen.destroy_domain(domid)


async def _backends_of(xs: XenstoreClient, domid: int, tx: int) -> list[str]:
    out = []
    try:
        kinds = await xs.directory(f"/local/domain/{domid}/device", tx=tx)
    except XenstoreError:
        return out
    for kind in kinds:
        base = f"/local/domain/{domid}/device/{kind.decode()}"
        for devid in await xs.directory(base, tx=tx):
            try:
                out.append((await xs.read(f"{base}/{devid.decode()}/backend", tx=tx)).decode())
            except XenstoreError:
                continue
    return out


async def domains(xs: XenstoreClient) -> list[tuple[int, str]]:
    """The domains xenstore knows, ``(domid, name)``, as ``xl list`` shows them."""
    out = []
    for entry in await xs.directory("/local/domain"):
        if not entry.isdigit():
            continue
        try:
            name = (await xs.read(f"/local/domain/{entry.decode()}/name")).decode()
        except XenstoreError:
            name = ""
        out.append((int(entry), name))
    return sorted(out)
