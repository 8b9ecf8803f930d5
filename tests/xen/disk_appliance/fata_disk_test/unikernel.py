"""One request per connection: ``r`` + 8-byte sector (big-endian) is answered with that
sector's 512 bytes; ``w`` + sector + 512 bytes writes and flushes it, answered ``ok``; the
disk's size is said at start."""

from __future__ import annotations

import argparse

from fata.devices import Block, Console, Flow, Lifecycle, Stack

SECTOR = 512


async def _exactly(flow: Flow, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await flow.read(n - len(data))
        if not chunk:
            raise ConnectionError("the client went before its request was whole")
        data += chunk
    return data


async def start(*, stack: Stack, disk: Block, console: Console, lifecycle: Lifecycle,
                args: argparse.Namespace) -> None:
    info = disk.info

    async def serve(flow: Flow) -> None:
        head = await _exactly(flow, 9)
        sector = int.from_bytes(head[1:], "big")
        if head[:1] == b"r":
            await flow.write(await disk.read(sector, 1))
        elif head[:1] == b"w":
            await disk.write(sector, await _exactly(flow, SECTOR))
            await disk.flush()
            await flow.write(b"ok")
        await flow.shutdown()

    await stack.tcp_listen(None, args.port, serve)
    console.info(f"disk of {info.sectors} sectors, serving on port {args.port}")
    await lifecycle.wait_stopped()
