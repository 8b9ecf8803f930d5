"""What every backend process of the Xen platform shares (netback, blkback): watching its
domain's ``backend/<kind>`` directory in xenstore, serving a device for each
``<frontend>/<devid>`` the toolstack makes there and ending it when its directory goes, and
the process around that (its hypervisor and xenstore connections, SIGTERM).
"""

from __future__ import annotations

import abc
import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from fata.devices import Console
from fata.platform.local_unix import UnixLocalSockets
from fata.platform.unix import UnixConsole
from fata.platform.xen_host import HypervisorClient
from fata.xen.xenbus import Device
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError


class BackendDomain(abc.ABC):
    """Every device of one kind that this backend domain serves."""

    kind: str  # "vif", "vbd"
    service: str  # "netback", "blkback": how its log names it

    def __init__(self, xen: HypervisorClient, xs: XenstoreClient, console: Console) -> None:
        self.xen, self.xs, self.console = xen, xs, console
        self.devices: dict[tuple[int, int], asyncio.Task[None]] = {}

    @property
    def root(self) -> str:
        return f"/local/domain/{self.xen.domid}/backend/{self.kind}"

    @abc.abstractmethod
    def serve(self, device: Device) -> Coroutine[Any, Any, None]:
        """Serve ``device`` until cancelled (its directory went) or it ends."""

    async def run(self) -> None:
        async with await self.xs.subscribe(self.root) as sub:
            self.console.info(f"{self.service} serving {self.root}")
            while True:
                await sub.next()
                while sub.pending():  # a burst of changes: one look at the result
                    await sub.next()
                await self._scan()

    async def _scan(self) -> None:
        """Start a device for each ``<frontend>/<devid>`` directory new here, end those
        gone."""
        found: set[tuple[int, int]] = set()
        try:
            for fe in await self.xs.directory(self.root):
                for devid in await self.xs.directory(f"{self.root}/{fe.decode()}"):
                    if fe.isdigit() and devid.isdigit():
                        found.add((int(fe), int(devid)))
        except XenstoreError as exc:
            if exc.code != "ENOENT":
                raise
        loop = asyncio.get_running_loop()
        for fe, devid in found - self.devices.keys():
            device = Device(self.kind, fe, self.xen.domid, devid)
            self.devices[(fe, devid)] = loop.create_task(self.serve(device))
        for key in self.devices.keys() - found:
            self.devices.pop(key).cancel()


async def serve_backend(name: str, hypervisor: str, xenstore: str,
                        make: Callable[[HypervisorClient, XenstoreClient, Console],
                                       BackendDomain]) -> None:
    """A backend process: connect as domain 0, serve until SIGTERM or SIGINT, then end
    every device (each tells its frontend on the way out)."""
    console = UnixConsole(name)
    xen = await HypervisorClient.connect(hypervisor)
    flow = await UnixLocalSockets(console).connect(xenstore)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with XenstoreClient(flow) as xs:
        backend = make(xen, xs, console)
        task = loop.create_task(backend.run())
        waits: list[Awaitable[Any]] = [task, loop.create_task(stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        devices = list(backend.devices.values())
        for device in devices:
            device.cancel()
        with suppress(asyncio.CancelledError):
            await asyncio.gather(task, *devices, return_exceptions=True)
    await xen.close()
