"""uvloop as the scheduler: only in images built with ``--key loop=uvloop``.

It lives in its own module, imported by computed name, so that the image builder's import
walk puts uvloop (a 13 MB extension) only into the images that chose it.
"""

from __future__ import annotations

import asyncio

import uvloop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh uvloop event loop."""
    return uvloop.new_event_loop()
