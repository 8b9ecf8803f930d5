"""The scheduler: asyncio's event loop, or uvloop's when the image was built with it.

The loop is a configure-time key (``fata build --key loop=uvloop``), not a runtime option:
an image holds only the loop it uses.  asyncio is the default because it measured cheaper
here: on the DNS appliance (socket stack, 40,000 queries/s from dnsperf, server pinned to one
core) asyncio's selector loop spent 13.2 µs of CPU per query and uvloop 16.2 µs.  The socket
stack drains each UDP port with a loop of ``recvfrom`` calls per wake-up, which leaves the
event loop itself little to do, and asyncio's ``add_reader`` path is cheaper than libuv's
poll handles.  uvloop stays one key away for TCP-heavy appliances.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

LOOP_MODULES = {"uvloop": "fata.runtime.uvloop_loop"}
"""Modules providing non-default loops; the config adds the chosen one to the image."""


def loop_factory(choice: str = "asyncio") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """Return a loop factory and its name for the baked ``loop`` key."""
    module = LOOP_MODULES.get(choice)
    if module is None:
        return asyncio.new_event_loop, "asyncio"
    return importlib.import_module(module).new_event_loop, choice
