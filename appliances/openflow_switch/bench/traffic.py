"""The benchmark's traffic: a UDP sender and a counting receiver, one per host namespace.

    python traffic.py recv PORT            # prints "ready", then one JSON line at the end
    python traffic.py send IP PORT SECONDS SIZE

The receiver counts datagrams until none has come for half a second after the first (a
socket timeout: it waits on arrival, never sleeps), and reports the count and the time from
the first to the last.  The sender sends as fast as it can for SECONDS (ENOBUFS counted and
carried on past) and reports how many left.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import time

QUIET_S = 0.5
FIRST_WAIT_S = 30.0


def recv(port: int) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    buf = bytearray(2048)
    s.settimeout(FIRST_WAIT_S)
    try:
        s.recv_into(buf)
    except TimeoutError:
        return {"received": 0, "span_s": 0.0}
    first = last = time.monotonic()
    count = 1
    s.settimeout(QUIET_S)
    while True:
        try:
            s.recv_into(buf)
        except TimeoutError:
            break
        count += 1
        last = time.monotonic()
    return {"received": count, "span_s": max(last - first, 1e-9)}


def send(ip: str, port: int, seconds: float, size: int) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((ip, port))
    payload = bytes(size)
    sent = nobufs = 0
    started = time.monotonic()
    stop = started + seconds
    while time.monotonic() < stop:
        for _ in range(256):
            try:
                s.send(payload)
                sent += 1
            except OSError as exc:
                if exc.errno not in (errno.ENOBUFS, errno.EAGAIN, errno.ECONNREFUSED):
                    raise
                nobufs += 1
    return {"sent": sent, "send_errors": nobufs, "elapsed_s": time.monotonic() - started}


def main(argv: list[str]) -> int:
    if argv[:1] == ["recv"]:
        out = recv(int(argv[1]))
    elif argv[:1] == ["send"]:
        out = send(argv[1], int(argv[2]), float(argv[3]), int(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
