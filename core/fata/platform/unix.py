"""Unix providers of the small devices: clock, random, console, lifecycle.

On Unix a stop request is SIGTERM or SIGINT and a reload request is SIGHUP; the handlers
are installed on the event loop so that appliances only ever see ``Lifecycle``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from fata.devices import Clock, Console, Lifecycle, Random

if TYPE_CHECKING:
    from fata.platform.registry import DeviceContext

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class UnixClock(Clock):
    """The host's clocks."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def time(self) -> float:
        """``time.time()``."""
        return time.time()


class UnixRandom(Random):
    """The kernel's CSPRNG."""

    def bytes(self, n: int) -> bytes:
        """``os.urandom(n)``."""
        return os.urandom(n)


class UnixConsole(Console):
    """One line per event on stderr: ``TIME LEVEL NAME: message``."""

    def __init__(self, name: str, level: str = "info", stream: TextIO | None = None) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r} (one of {', '.join(LEVELS)})")
        self.name = name
        self.threshold = LEVELS[level]
        self.stream = stream if stream is not None else sys.stderr

    def enabled(self, level: str) -> bool:
        """Whether ``level`` would be written (callers skip formatting costly messages)."""
        return LEVELS.get(level, 40) >= self.threshold

    def log(self, level: str, message: str) -> None:
        """Write one line, newlines in the message escaped so one event stays one line."""
        if LEVELS.get(level, 40) < self.threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        text = message.replace("\n", "\\n")
        self.stream.write(f"{stamp} {level} {self.name}: {text}\n")
        self.stream.flush()


class UnixLifecycle(Lifecycle):
    """Stop on SIGTERM/SIGINT, reload on SIGHUP."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()
        self._reload: list[Callable[[], None]] = []
        self.stop_signal: int | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Install the signal handlers on ``loop`` (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def request_stop(self, sig: int | None = None) -> None:
        """Ask the appliance to stop."""
        self.stop_signal = sig
        self._stopped.set()

    def request_reload(self) -> None:
        """Run every reload callback; one failing does not stop the others."""
        for callback in list(self._reload):
            try:
                callback()
            except Exception as exc:
                print(f"fata: reload callback failed: {exc!r}", file=sys.stderr)

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was requested."""
        return self._stopped.is_set()

    def on_reload(self, callback: Callable[[], None]) -> None:
        """Register a reload callback."""
        self._reload.append(callback)

    async def wait_stopped(self) -> None:
        """Return once a stop was requested."""
        await self._stopped.wait()


# ---------------------------------------------------------------- providers (fata.platform.registry)

async def open_clock(name: str, spec: dict, ctx: DeviceContext) -> Clock:
    """The host's clocks."""
    return UnixClock()


async def open_random(name: str, spec: dict, ctx: DeviceContext) -> Random:
    """The kernel's CSPRNG."""
    return UnixRandom()


async def open_console(name: str, spec: dict, ctx: DeviceContext) -> Console:
    """The runtime's console (one per appliance, shared with the runtime's own messages)."""
    return ctx.console


async def open_lifecycle(name: str, spec: dict, ctx: DeviceContext) -> Lifecycle:
    """The runtime's lifecycle (signals are the runtime's to install)."""
    return ctx.lifecycle
