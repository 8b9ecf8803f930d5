"""A cbench-compatible controller benchmark: fake switches that flood a controller with
PACKET_INs and count its answers, as cbench (oflops) did for the controllers of the ASPLOS
2013 paper (Mirage, NOX, Maestro).

Each of ``--switches`` fake switches (datapath ids 1..N) connects over TCP, says HELLO in
``--version`` (1 for OpenFlow 1.0, cbench's; 4 for 1.3), answers FEATURES_REQUEST, ECHO and
BARRIER, and, once every switch has joined (and in 1.3 got its table-miss flow), sends
buffered PACKET_INs of 60-byte frames: packet k of a switch comes from a fresh source MAC
(one of ``--macs`` per switch, in turn) on port 1 or 2 (alternately) to the previous
packet's source, which the learning controller has just seen on the other port, so the
answer is one FLOW_MOD (the first packet's is a flooding PACKET_OUT).  A response is a
FLOW_MOD or PACKET_OUT, as cbench counts.

- ``--mode batch`` (cbench's throughput mode): each switch writes PACKET_INs as long as its
  connection takes them (the transport's high-water mark stops it; it resumes when drained);
- ``--mode single`` (latency mode): one PACKET_IN outstanding per switch, the next sent when
  the answer arrives (or after a second without one).

After ``--warmup`` seconds, ``--rounds`` rounds of ``--seconds`` each: responses per second
summed over the switches, per round.  The result is one JSON object on stdout.

    python cbench.py --port PORT [--host 127.0.0.1] [--switches 16] [--macs 100000]
        [--mode batch|single] [--version 1|4] [--seconds 1] [--rounds 5] [--warmup 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fata_openflow_switch import messages as M
from fata_openflow_switch import of10
from fata_openflow_switch.oxm import Match, oxm

HEADER = struct.Struct("!BBHI")
FRAME = bytes(12) + b"\x08\x00" + bytes(46)
CHUNK = 64  # PACKET_INs built and written at a time
HIGH_WATER = 64 * 1024
FLOW_MOD, PACKET_OUT = 14, 13
BARRIER_REQUEST = {1: 18, 4: 20}
ECHO_REQUEST, FEATURES_REQUEST = 2, 5


def template(version: int) -> tuple[bytes, int, int]:
    """A PACKET_IN of FRAME, and the offsets of its in-port and of the frame."""
    if version == 1:
        return of10.packet_in(0, 0, 0, FRAME), 14, 18
    msg = M.PacketIn(0, len(FRAME), 0, 0, 0, Match((oxm("in_port", 0),)), FRAME).encode()
    return msg, 32, len(msg) - len(FRAME)


class Counts:
    """Responses seen by every fake switch; ``measuring`` once the warm-up is over."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.joined = 0
        self.responses = 0
        self.flow_mods = 0
        self.packet_outs = 0
        self.all_joined = asyncio.Event()
        self.sending = False


class FakeSwitch(asyncio.Protocol):
    """One switch: the handshake's answers, then PACKET_INs, counting the responses."""

    def __init__(self, index: int, version: int, macs: int, mode: str, counts: Counts) -> None:
        self.index, self.version, self.macs, self.mode, self.counts = (
            index, version, macs, mode, counts)
        self.template, self.port_at, self.frame_at = template(version)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.k = 0
        self.paused = False
        self.ready = False
        self.last_sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(HEADER.pack(self.version, 0, 8, 1))

    def _mac(self, k: int) -> bytes:
        return bytes([2, self.index]) + (k % self.macs).to_bytes(4, "big")

    def packet_ins(self, n: int) -> bytes:
        """The next ``n`` PACKET_INs."""
        size = len(self.template)
        out = bytearray(self.template * n)
        for i in range(n):
            k = self.k + i
            at = i * size
            struct.pack_into("!I", out, at + 4, k & 0xFFFFFFFF)  # xid
            struct.pack_into("!I", out, at + 8, k & 0x7FFFFFFF)  # buffer_id (never NO_BUFFER)
            port = 1 + (k & 1)
            if self.version == 1:
                struct.pack_into("!H", out, at + self.port_at, port)
            else:
                struct.pack_into("!I", out, at + self.port_at, port)
            frame = at + self.frame_at
            out[frame:frame + 6] = self._mac(k - 1)
            out[frame + 6:frame + 12] = self._mac(k)
        self.k += n
        return bytes(out)

    def fill(self) -> None:
        """Batch mode: write until the transport says stop."""
        transport = self.transport
        while transport is not None and not self.paused and self.counts.sending:
            transport.write(self.packet_ins(CHUNK))

    def send_one(self) -> None:
        if self.transport is not None and self.counts.sending:
            self.last_sent = time.monotonic()
            self.transport.write(self.packet_ins(1))

    def start(self) -> None:
        if self.mode == "batch":
            self.fill()
        else:
            self.send_one()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.mode == "batch":
            self.fill()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        answered = 0
        counts = self.counts
        transport = self.transport
        assert transport is not None
        while len(buf) - pos >= 8:
            version, msg_type, length, xid = HEADER.unpack_from(buf, pos)
            if length < 8:
                transport.close()
                return
            if len(buf) - pos < length:
                break
            if msg_type == FLOW_MOD or msg_type == PACKET_OUT:
                if self.ready:
                    answered += 1
                    if msg_type == FLOW_MOD:
                        counts.flow_mods += 1
                    else:
                        counts.packet_outs += 1
                elif msg_type == FLOW_MOD:  # 1.3's table-miss flow: the switch is set up
                    self._ready()
            elif msg_type == FEATURES_REQUEST:
                transport.write(self._features(xid))
                if self.version == 1:
                    self._ready()
            elif msg_type == ECHO_REQUEST:
                transport.write(HEADER.pack(version, 3, length, xid)
                                + bytes(buf[pos + 8:pos + length]))
            elif msg_type == BARRIER_REQUEST.get(version):
                transport.write(HEADER.pack(version, msg_type + 1, 8, xid))
            pos += length
        del buf[:pos]
        if answered:
            counts.responses += answered
            if self.mode == "single":
                self.send_one()

    def _features(self, xid: int) -> bytes:
        dpid = self.index + 1
        if self.version == 1:
            ports = [of10.PhyPort(n, bytes([2, 0xFF, 0, 0, self.index, n]), f"p{n}")
                     for n in (1, 2)]
            return of10.features_reply(xid, dpid, ports)
        return M.FeaturesReply(dpid, n_buffers=256, n_tables=1, xid=xid).encode()

    def _ready(self) -> None:
        if not self.ready:
            self.ready = True
            self.counts.joined += 1
            if self.counts.joined == self.counts.n:
                self.counts.all_joined.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def run(host: str, port: int, switches: int, macs: int, mode: str, version: int,
              seconds: float, rounds: int, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    counts = Counts(switches)
    fakes = [FakeSwitch(i, version, macs, mode, counts) for i in range(switches)]
    for fake in fakes:
        await loop.create_connection(lambda f=fake: f, host, port)
    await asyncio.wait_for(counts.all_joined.wait(), 30)
    counts.sending = True
    for fake in fakes:
        fake.start()
    rates = []
    stalled = asyncio.get_running_loop().create_task(_unstall(fakes, mode))
    try:
        await asyncio.sleep(warmup)  # the benchmark's own clock: warm-up, then rounds
        for _ in range(rounds):
            before, start = counts.responses, time.monotonic()
            await asyncio.sleep(seconds)
            rates.append((counts.responses - before) / (time.monotonic() - start))
    finally:
        counts.sending = False
        stalled.cancel()
        for fake in fakes:
            if fake.transport is not None:
                fake.transport.close()
    return {"mode": mode, "version": version, "switches": switches, "macs": macs,
            "rounds": [round(r, 1) for r in rates],
            "responses_per_s": statistics.median(rates) if rates else 0.0,
            "min": min(rates, default=0.0), "max": max(rates, default=0.0),
            "flow_mods": counts.flow_mods, "packet_outs": counts.packet_outs}


async def _unstall(fakes: list[FakeSwitch], mode: str) -> None:
    """Single mode: a switch whose PACKET_IN got no answer within a second sends another."""
    if mode != "single":
        return
    while True:
        await asyncio.sleep(0.25)
        now = time.monotonic()
        for fake in fakes:
            if now - fake.last_sent > 1.0:
                fake.send_one()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="cbench.py", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--switches", type=int, default=16)
    p.add_argument("--macs", type=int, default=100000)
    p.add_argument("--mode", choices=["batch", "single"], default="batch")
    p.add_argument("--version", type=int, choices=[1, 4], default=1)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=float, default=1.0)
    a = p.parse_args(argv)
    result = asyncio.run(run(a.host, a.port, a.switches, a.macs, a.mode, a.version, a.seconds,
                             a.rounds, a.warmup))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
