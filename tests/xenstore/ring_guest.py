"""A guest domain's program for the ring tests: it finds its xenstore ring as a Linux
guest's xenbus driver does (its parameters, its own page, its port) and runs a fixed script
over it with the raw wire protocol, printing one JSON line per step for the test to check.

Run by the test with the domain's hypervisor connection inherited (``FATA_XEN_DOMAIN_FD``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient, xenstore_ring
from fata.xen.xs_wire import Message, MessageReader, Op


class Raw:
    """Requests one at a time over the ring; watch events kept aside."""

    def __init__(self, flow) -> None:
        self.flow = flow
        self.reader = MessageReader()
        self.events: list[list[str]] = []
        self.ready: list[Message] = []
        self.req = 0

    async def next(self) -> Message:
        while not self.ready:
            data = await self.flow.read()
            if not data:
                raise ConnectionError("the ring connection ended")
            self.ready += self.reader.feed(data)
        return self.ready.pop(0)

    async def ask(self, op: int, *parts: bytes, raw: bytes | None = None) -> str:
        self.req += 1
        payload = raw if raw is not None else b"".join(p + b"\0" for p in parts)
        await self.flow.write(Message(op, self.req, 0, payload).encode())
        while True:
            msg = await self.next()
            if msg.op == Op.WATCH_EVENT:
                self.events.append([p.decode() for p in msg.strings()])
                continue
            assert msg.req_id == self.req, msg
            text = msg.payload.rstrip(b"\0").decode()
            return f"error {text}" if msg.op == Op.ERROR else text

    async def event(self) -> list[str]:
        while not self.events:
            msg = await self.next()
            assert msg.op == Op.WATCH_EVENT, msg
            self.events.append([p.decode() for p in msg.strings()])
        return self.events.pop(0)


def say(**what: object) -> None:
    print(json.dumps(what), flush=True)


async def main() -> None:
    xen = await HypervisorClient.from_fd(int(os.environ[DOMAIN_FD_ENV]))
    xs = Raw(await xenstore_ring(xen))
    say(step="domid", value=xen.domid)
    say(step="home", value=await xs.ask(Op.GET_DOMAIN_PATH, str(xen.domid).encode()))
    say(step="write", value=await xs.ask(Op.WRITE, raw=b"data/x\0from the guest"))
    say(step="read", value=await xs.ask(Op.READ, b"data/x"))
    say(step="peek", value=await xs.ask(Op.READ, b"/local/domain/0/secret"))
    say(step="trespass", value=await xs.ask(Op.WRITE, raw=b"/local/domain/0/x\0y"))
    say(step="watch", value=await xs.ask(Op.WATCH, b"control/shutdown", b"sd"))
    say(step="event", value=await xs.event())  # the registration's own event
    say(step="waiting")
    say(step="event", value=await xs.event())  # the toolstack's write
    say(step="shutdown", value=await xs.ask(Op.READ, b"control/shutdown"))
    # a reconnection forgets the watch, as xenstore-ring.txt promises
    await xs.flow.reconnect()
    say(step="reconnected", value=await xs.ask(Op.READ, b"data/x"))
    say(step="unwatch", value=await xs.ask(Op.UNWATCH, b"control/shutdown", b"sd"))
    await xen.close()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 60))
    sys.exit(0)
