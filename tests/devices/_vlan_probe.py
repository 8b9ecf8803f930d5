"""Run inside a namespace holding veth pair ``va``-``vb``: Fata's packet-socket port on
``va`` receives the frames given (hex, one per argument) sent by a raw socket on ``vb``, and
prints what it got as a JSON list of hex strings.  ``--wire`` starts the port in wire mode
(the virtio-net header kept in front of each frame); ``--no-c`` hides the C module."""

from __future__ import annotations

import asyncio
import json
import socket
import sys


async def main(frames: list[bytes], wire: bool) -> list[str]:
    from fata.platform.packet import PacketNetif

    port = PacketNetif.open("va")
    got: list[bytes] = []
    done = asyncio.Event()

    def receive(frame: bytes, _vouched: bool) -> None:
        got.append(frame)
        if len(got) == len(frames):
            done.set()

    port.start(receive, wire=wire)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind(("vb", 0))
        for frame in frames:
            raw.send(frame)
    await asyncio.wait_for(done.wait(), 10)
    port.close()
    return [f.hex() for f in got]


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--no-c" in args:
        args.remove("--no-c")
        import fata.platform.fdnetif as fdnetif
        fdnetif._frames = None
    wire = "--wire" in args
    if wire:
        args.remove("--wire")
    print(json.dumps(asyncio.run(main([bytes.fromhex(a) for a in args], wire))))
