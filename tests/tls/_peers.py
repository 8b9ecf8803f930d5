"""Async helpers: our client over host TCP, via the Flow adapter."""

from __future__ import annotations

import time

from fata.platform.socket_stack import connect_flow
from fata.tls import TLSConfig
from fata.tls.events import SessionTicket
from fata.tls.flow import TLSFlow, connect


async def open_tls(
    port: int, config: TLSConfig, name: str = "localhost", session: SessionTicket | None = None
) -> TLSFlow:
    flow = await connect_flow("127.0.0.1", port)
    return await connect(flow, config, name, session=session, clock=time.time)


async def http_get(tls: TLSFlow, path: str = "/") -> bytes:
    await tls.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    out = b""
    while True:
        chunk = await tls.read()
        if not chunk:
            return out
        out += chunk
