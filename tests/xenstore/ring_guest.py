"""A guest domain's program for the ring tests: it finds its xenstore ring as a Linux
guest's xenbus driver does (its parameters, its own page, its port) and runs a fixed script
over it with Fata's own xenstore client, printing one JSON line per step for the test to
check.

Run by the test with the domain's hypervisor connection inherited (``FATA_XEN_DOMAIN_FD``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable

from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient, xenstore_ring
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError


async def answer(request: Awaitable[object]) -> object:
    """What a request came back with, as the test compares it: text, or ``error CODE``."""
    try:
        got = await request
    except XenstoreError as exc:
        return f"error {exc.code}"
    if isinstance(got, bytes):
        return got.decode()
    return "OK" if got is None else got


def say(**what: object) -> None:
    print(json.dumps(what), flush=True)


async def main() -> None:
    xen = await HypervisorClient.from_fd(int(os.environ[DOMAIN_FD_ENV]))
    flow = await xenstore_ring(xen)
    xs = XenstoreClient(flow)
    say(step="domid", value=xen.domid)
    say(step="home", value=await answer(xs.get_domain_path(xen.domid)))
    say(step="features", value=await answer(xs.get_feature()))
    say(step="write", value=await answer(xs.write("data/x", "from the guest")))
    say(step="read", value=await answer(xs.read("data/x")))
    say(step="peek", value=await answer(xs.read("/local/domain/0/secret")))
    say(step="trespass", value=await answer(xs.write("/local/domain/0/x", "y")))
    say(step="quota", value=await answer(xs.get_quota("nodes")))
    say(step="watch", value=await answer(xs.watch("control/shutdown", "sd")))
    event = await xs.next_event()  # the registration's own event
    say(step="event", value=[event.path.decode(), event.token.decode()])
    say(step="waiting")
    event = await xs.next_event()  # the toolstack's write
    say(step="event", value=[event.path.decode(), event.token.decode()])
    say(step="shutdown", value=await answer(xs.read("control/shutdown")))
    # a reconnection forgets the watch, as xenstore-ring.txt promises
    await flow.reconnect()
    say(step="reconnected", value=await answer(xs.read("data/x")))
    say(step="unwatch", value=await answer(xs.unwatch("control/shutdown", "sd")))
    await xs.close()
    await xen.close()

if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 60))
    sys.exit(0)
