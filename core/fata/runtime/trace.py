"""Chrome trace-event recording (``--trace FILE``), viewable in Perfetto or chrome://tracing.

Recording is off unless a tracer is installed; device adapters check :data:`current` once
when a port is opened and wrap their handlers only then, so an untraced appliance pays
nothing on its hot path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

current: Tracer | None = None
"""The installed tracer, or ``None`` when tracing is off."""


class Tracer:
    """Collects trace events in memory and writes them as one JSON file at stop."""

    def __init__(self, path: Path, max_events: int = 1_000_000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.events: list[dict[str, Any]] = []
        self.dropped = 0
        self.pid = os.getpid()
        self._ids = itertools.count(1)

    @staticmethod
    def now_us() -> float:
        """Microseconds on the trace's clock."""
        return time.perf_counter_ns() / 1000.0

    def _add(self, event: dict[str, Any]) -> None:
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return
        event.setdefault("pid", self.pid)
        event.setdefault("tid", threading.get_ident() % 100000)
        self.events.append(event)

    def complete(self, name: str, cat: str, start_us: float, args: dict[str, Any] | None = None) -> None:
        """A span from ``start_us`` to now (a request handled)."""
        end = self.now_us()
        self._add({"name": name, "cat": cat, "ph": "X", "ts": start_us, "dur": end - start_us,
                   "args": args or {}})

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Record every task's life as an async span, named after the task's coroutine."""
        previous = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                    **kwargs: Any) -> asyncio.Future[Any]:
            task = (previous(loop, coro, **kwargs) if previous is not None
                    else asyncio.Task(coro, loop=loop, **kwargs))
            span_id = next(self._ids)
            name = getattr(coro, "__qualname__", type(coro).__name__)
            self._add({"name": name, "cat": "task", "ph": "b", "id": span_id, "ts": self.now_us()})

            def done(_task: asyncio.Future[Any]) -> None:
                self._add({"name": name, "cat": "task", "ph": "e", "id": span_id,
                           "ts": self.now_us()})

            task.add_done_callback(done)
            return task

        loop.set_task_factory(factory)

    def write(self) -> None:
        """Write the collected events as Chrome trace JSON."""
        meta = {"dropped_events": self.dropped}
        self.path.write_text(json.dumps({"traceEvents": self.events, "displayTimeUnit": "ms",
                                         "otherData": meta}))


def wrap_datagram_handler(
    handler: Callable[[bytes, tuple[str, int]], bytes | None], label: str
) -> Callable[[bytes, tuple[str, int]], bytes | None]:
    """Return ``handler`` itself when tracing is off, else a version that records spans."""
    tracer = current
    if tracer is None:
        return handler

    def traced(data: bytes, peer: tuple[str, int]) -> bytes | None:
        start = tracer.now_us()
        reply = handler(data, peer)
        tracer.complete(label, "udp", start, {"peer": f"{peer[0]}:{peer[1]}", "in": len(data),
                                              "out": len(reply) if reply else 0})
        return reply

    return traced


def wrap_flow_handler(handler: Callable[[Any], Awaitable[None]],
                      label: str) -> Callable[[Any], Awaitable[None]]:
    """Return ``handler`` itself when tracing is off, else a version that records one span
    per connection."""
    tracer = current
    if tracer is None:
        return handler

    async def traced(flow: Any) -> None:
        start = tracer.now_us()
        try:
            await handler(flow)
        finally:
            tracer.complete(label, "tcp", start, {"peer": f"{flow.peer[0]}:{flow.peer[1]}"})

    return traced
