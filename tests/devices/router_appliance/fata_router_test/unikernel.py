"""Turn forwarding on, say where the stack answers, serve until stopped."""

from __future__ import annotations

import argparse

from fata.devices import Console, Lifecycle, Netif, Stack


async def start(*, left: Netif, right: Netif, stack: Stack, console: Console,
                lifecycle: Lifecycle, args: argparse.Namespace) -> None:
    """Route between the ports (``DirectStack.forwarding``) until stopped."""
    stack.forwarding = True  # type: ignore[attr-defined]
    console.info("routing between " + ", ".join(
        f"{i.name} {i.addresses[0]}" for i in stack.interfaces if i.addresses))
    try:
        await lifecycle.wait_stopped()
    finally:
        console.info(f"forwarded {stack.stats().get('ipv4_forwarded', 0)} packets")  # type: ignore[attr-defined]
