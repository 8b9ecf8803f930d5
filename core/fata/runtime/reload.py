"""Reloading an appliance's data on SIGHUP: one reload at a time, loaded off the event loop,
and a failed load keeps what is being served.

Every appliance that serves loaded data (zones, a site) reloads it the same way: the load
(file reads, parsing, precomputation) runs in a worker thread so that serving goes on
meanwhile; a second SIGHUP during a reload is ignored, not queued; a load that fails with
one of the appliance's own errors is logged and the old data keeps being served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from fata.devices import Console

T = TypeVar("T")


class Reloader:
    """Single-flight reloads of what an appliance serves (``what``: "zones", "site")."""

    def __init__(self, console: Console, what: str,
                 errors: tuple[type[Exception], ...]) -> None:
        self.console = console
        self.what = what
        self.errors = errors
        self.running = False

    async def load(self, load: Callable[[], T]) -> T | None:
        """``load()`` in a worker thread; None (logged) if a reload is already running or
        it fails with one of ``errors``, so the caller keeps serving the old data."""
        if self.running:
            self.console.warning("reload already in progress; ignored")
            return None
        self.running = True
        try:
            return await asyncio.get_running_loop().run_in_executor(None, load)
        except self.errors as exc:
            self.console.error(f"reload failed, still serving the previous {self.what}: {exc}")
            return None
        finally:
            self.running = False
