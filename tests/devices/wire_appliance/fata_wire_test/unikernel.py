"""Two ports as one wire: every frame from one is sent out of the other, batch by batch."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fata.devices import Console, Lifecycle, Netif


def _forward(out: Netif):  # -> BatchReceiver
    def batch(frames: Sequence[bytes], trusted: bytes) -> None:
        out.send_many([(frame,) for frame in frames])
    return batch


async def start(*, left: Netif, right: Netif, console: Console, lifecycle: Lifecycle,
                args: argparse.Namespace) -> None:
    """Join the ports until stopped; say how many frames went each way."""
    to_right, to_left = _forward(right), _forward(left)
    left.start(lambda frame, _t: to_right([frame], b"\0"), to_right, wire=True)
    right.start(lambda frame, _t: to_left([frame], b"\0"), to_left, wire=True)
    console.info(f"wire up: {left.name} <-> {right.name}")
    try:
        await lifecycle.wait_stopped()
    finally:
        console.info(f"wire down: {left.rx_frames} frames left to right, "
                     f"{right.rx_frames} right to left")
