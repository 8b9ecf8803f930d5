"""A guest domain's own connections, shared by all its frontends: its hypervisor
connection (inherited as ``FATA_XEN_DOMAIN_FD``) and its xenstore ring.

One descriptor and one ring page cannot carry two clients, so netfront and blkfront, and
every vif and vbd of an appliance, take them from here: made once per event loop.
"""

from __future__ import annotations

import asyncio
import os
import weakref

from fata.platform import PlatformError
from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient, xenstore_ring
from fata.xen.xs_client import XenstoreClient

_guest: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                   tuple[HypervisorClient, XenstoreClient]] = (
    weakref.WeakKeyDictionary())


async def guest_connection(what: str = "a Xen frontend") -> tuple[HypervisorClient,
                                                                  XenstoreClient]:
    """This guest's hypervisor connection and xenstore client; ``what`` names the option
    that needed them, for the error when this process is not a guest."""
    loop = asyncio.get_running_loop()
    if loop not in _guest:
        fd = os.environ.get(DOMAIN_FD_ENV)
        if fd is None or not fd.isdigit():
            raise PlatformError(f"{what} runs only in a guest domain (started by a Xen "
                                f"toolstack, with {DOMAIN_FD_ENV})")
        xen = await HypervisorClient.from_fd(int(fd))
        _guest[loop] = (xen, XenstoreClient(await xenstore_ring(xen)))
    return _guest[loop]
