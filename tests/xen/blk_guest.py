"""A guest domain's program for ``test_blkfront`` (no tests here): it opens its vbds as an
appliance's ``block()`` devices are opened, through ``--block NAME=xen:DEVID``
(``fata.platform.block_file`` handing them to blkfront), over the hypervisor connection
it inherited (``FATA_XEN_DOMAIN_FD``), and prints one JSON line per step.

- ``script``: the fixed writes of :func:`plan` on vbd 0 (one sector, a 64 KiB request,
  unaligned multi-request writes, 64 writes in flight at once), each read back, a flush,
  a discard read back as zeros; vbd 1 is read-only and must refuse a write.
- ``stream``: 64 KiB writes, each read back, until the backend goes; then waits for a
  backend to connect again and checks that every write acknowledged before is there.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import time

from fata.devices.block import Block, BlockError
from fata.platform.block_file import open_block
from fata.platform.xen_blkfront import Blkfront

SECTORS = 16384  # vbd 0: 8 MiB
STREAM_SLOTS = 64  # 64 KiB slots the stream cycles through


def say(**what: object) -> None:
    print(json.dumps(what), flush=True)


def plan(seed: int = 7) -> list[tuple[int, bytes]]:
    """The script's writes, ``(sector, data)``, in order (the test builds the expected
    disk from the same list)."""
    rng = random.Random(seed)
    writes = [(0, rng.randbytes(512)), (128, rng.randbytes(65536)),
              (1001, rng.randbytes(300 * 512)), (5003, rng.randbytes(2048 * 512 + 512))]
    writes += [(9000 + 40 * i, rng.randbytes(rng.randrange(1, 41) * 512)) for i in range(64)]
    return writes


DISCARD = (129, 64)  # sectors the script discards last (inside the 64 KiB write)


async def opened(name: str, choice: str) -> Block:
    ctx = argparse.Namespace(options=argparse.Namespace(block=[f"{name}={choice}"]))
    return await open_block(name, {}, ctx)  # type: ignore[arg-type]


async def script() -> None:
    disk = await opened("disk", "xen:0")
    seed = await opened("seed", "xen:1")
    assert isinstance(disk, Blkfront)
    info = disk.info
    say(step="info", sector_size=info.sector_size, sectors=info.sectors,
        read_only=info.read_only, seed_read_only=seed.info.read_only)
    writes = plan()
    for sector, data in writes[:4]:  # one at a time
        await disk.write(sector, data)
        back = await disk.read(sector, len(data) // 512)
        say(step="write", sector=sector, bytes=len(data), same=back == data)
    many = writes[4:]
    await asyncio.gather(*(disk.write(s, d) for s, d in many))  # all in flight at once
    backs = await asyncio.gather(*(disk.read(s, len(d) // 512) for s, d in many))
    say(step="concurrent", count=len(many),
        same=all(b == d for b, (_, d) in zip(backs, many, strict=True)))
    await disk.flush()
    say(step="flushed")
    await disk.discard(*DISCARD)
    zeros = await disk.read(*DISCARD)
    say(step="discard", zeros=zeros == bytes(DISCARD[1] * 512))
    whole = await disk.read(0, info.sectors)
    say(step="digest", sha256=hashlib.sha256(whole).hexdigest())
    try:
        await seed.write(0, bytes(512))
        say(step="seed-write", refused=False)
    except BlockError as exc:
        say(step="seed-write", refused=True, errno=exc.errno)
    say(step="seed", sha256=hashlib.sha256(await seed.read(0, seed.info.sectors)).hexdigest())
    await disk.close()
    await seed.close()
    say(step="done")


def slot_data(n: int) -> bytes:
    return hashlib.shake_256(n.to_bytes(8, "little")).digest(65536)


async def stream() -> None:
    disk = await opened("disk", "xen:0")
    assert isinstance(disk, Blkfront)
    acknowledged: dict[int, int] = {}  # slot -> the write number it holds
    n = 0
    writing: int | None = None  # a slot whose content a failed write leaves unknown
    try:
        while True:
            slot = writing = n % STREAM_SLOTS
            await disk.write(slot * 128, slot_data(n))
            acknowledged[slot], writing = n, None
            if await disk.read(slot * 128, 128) != slot_data(n):
                say(step="mismatch", n=n)
                return
            n += 1
            if n % 20 == 0:
                say(step="progress", n=n)
    except BlockError as exc:
        say(step="error", errno=exc.errno, message=str(exc), after=n)
        if writing is not None:
            acknowledged.pop(writing, None)
    started = time.monotonic()
    try:
        await disk.read(0, 1)
        say(step="after-error", failed=False)
    except BlockError as exc:
        say(step="after-error", failed=True, errno=exc.errno,
            seconds=time.monotonic() - started)
    await asyncio.wait_for(disk.wait_connected(), 60)
    say(step="reconnected")
    intact = [slot for slot, k in acknowledged.items()
              if await disk.read(slot * 128, 128) == slot_data(k)]
    say(step="intact", slots=len(intact), acknowledged=len(acknowledged))
    await disk.close()
    say(step="done")


if __name__ == "__main__":
    mode = sys.argv[1]
    asyncio.run(asyncio.wait_for({"script": script, "stream": stream}[mode](), 120))
