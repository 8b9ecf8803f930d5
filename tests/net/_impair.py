"""A user-space netem: an Ethernet bridge between two interfaces that impairs traffic.

Run inside a namespace as ``python _impair.py IF_A IF_B [--loss P] [--delay S]
[--reorder P] [--duplicate P] [--seed N]``.  Frames read from one interface with AF_PACKET
are written to the other after the impairments, applied independently in each direction
with netem's semantics: ``loss`` drops, ``duplicate`` sends twice, ``delay`` holds every
frame except a ``reorder`` fraction, which goes at once and so overtakes the held ones.

The tests use kernel netem (``tc qdisc ... netem``) when the kernel has it and this bridge
then only copies frames; on kernels built without sch_netem this bridge does the impairing.
It prints ``ready`` once both sockets are bound.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import socket
import time

ETH_P_ALL = 0x0003


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--reorder", type=float, default=0.0)
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    socks = {}
    for name in (opts.a, opts.b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        socks[name] = s
    other = {socks[opts.a].fileno(): socks[opts.b], socks[opts.b].fileno(): socks[opts.a]}
    by_fd = {s.fileno(): s for s in socks.values()}
    held: list[tuple[float, int, socket.socket, bytes]] = []
    order = 0
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    print("ready", flush=True)
    while True:
        timeout = None
        if held:
            timeout = max(0.0, held[0][0] - time.monotonic()) * 1000
        for fd, _ in poller.poll(timeout):
            sock = by_fd[fd]
            for _ in range(64):
                try:
                    frame, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue  # our own transmissions on this interface
                if rng.random() < opts.loss:
                    continue
                copies = 2 if rng.random() < opts.duplicate else 1
                now = time.monotonic()
                release = now if rng.random() < opts.reorder else now + opts.delay
                for _ in range(copies):
                    order += 1
                    heapq.heappush(held, (release, order, other[fd], frame))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, out, frame = heapq.heappop(held)
            try:
                out.send(frame)
            except OSError:
                pass


if __name__ == "__main__":
    main()
