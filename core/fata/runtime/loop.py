"""The scheduler: an asyncio event loop, uvloop's when it is installed (and in the image)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory(choice: str = "auto") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """Return a loop factory and its name (``"uvloop"`` or ``"asyncio"``).

    ``auto`` takes uvloop when it is importable; ``uvloop`` insists on it (ImportError if the
    image lacks it); ``asyncio`` takes the standard loop.
    """
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"
