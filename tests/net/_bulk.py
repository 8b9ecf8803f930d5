"""Bulk TCP between two Linux hosts in namespaces, through whatever the test put between
them (a routing stack, a two-port appliance): a sink that says when it listens, a source,
and the check that every byte arrived (count and sha256)."""

from __future__ import annotations

import asyncio
import sys

SINK = r"""
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000)); s.listen(1); s.settimeout(60); print("ready", flush=True)
c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
while chunk := c.recv(1 << 16):
    h.update(chunk); n += len(chunk)
print(n, h.hexdigest())
"""
SOURCE = r"""
import hashlib, socket, sys
size = int(sys.argv[2]); block = bytes(range(256)) * 256
c = socket.create_connection((sys.argv[1], 9000), timeout=60)
h = hashlib.sha256(); sent = 0
while sent < size:
    piece = block[:size - sent]; c.sendall(piece); h.update(piece); sent += len(piece)
c.shutdown(socket.SHUT_WR); c.recv(1); print(sent, h.hexdigest())
"""


async def transfer(sink_ns: str, sink_ip: str, source_ns: str, size: int) -> None:
    """Send ``size`` bytes from a host in ``source_ns`` to one listening on ``sink_ip`` in
    ``sink_ns``; fails unless all of them arrived intact."""
    sink = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", sink_ns, sys.executable, "-c", SINK, sink_ip,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert sink.stdout is not None
        assert (await asyncio.wait_for(sink.stdout.readline(), 30)).strip() == b"ready"
        source = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", source_ns, sys.executable, "-c", SOURCE, sink_ip, str(size),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        sent, _ = await asyncio.wait_for(source.communicate(), 120)
        assert source.returncode == 0, sent.decode(errors="replace")
        received = await asyncio.wait_for(sink.stdout.read(), 60)
        assert received.split() == sent.split() and sent.split()[0] == str(size).encode()
    finally:
        if sink.returncode is None:
            sink.kill()
        await sink.wait()
