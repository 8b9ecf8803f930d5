"""The host-socket stack, exercised with plain Python sockets as the peer."""

from __future__ import annotations

import asyncio
import socket

import pytest
from fata.devices import Flow
from fata.platform import PlatformError
from fata.platform.socket_stack import SocketStack
from fata.platform.unix import UnixConsole


def run(coro):
    return asyncio.run(coro)


def test_udp_reply_and_handler_errors_do_not_stop_the_port() -> None:
    async def main() -> None:
        stack = SocketStack(UnixConsole("t", "error"))

        def handler(data: bytes, peer: tuple[str, int]) -> bytes | None:
            if data == b"boom":
                raise ValueError("bad datagram")
            return data.upper() if data != b"quiet" else None

        endpoint = await stack.udp_listen("127.0.0.1", 0, handler)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        for payload in (b"boom", b"quiet", b"hello"):
            await loop.sock_sendto(client, payload, endpoint.local)
        data = await asyncio.wait_for(loop.sock_recv(client, 100), 2)
        assert data == b"HELLO"
        assert endpoint.handler_errors == 1
        client.close()
        await stack.close()

    run(main())


def test_tcp_echo_and_connect() -> None:
    async def main() -> None:
        stack = SocketStack(UnixConsole("t", "error"))

        async def echo(flow: Flow) -> None:
            while data := await flow.read():
                await flow.write(data)
            await flow.close()

        listener = await stack.tcp_listen("127.0.0.1", 0, echo)
        flow = await stack.tcp_connect(*listener.local, timeout=2)
        payload = bytes(range(256)) * 4096
        await flow.write(payload)
        received = bytearray()
        while len(received) < len(payload):
            received += await asyncio.wait_for(flow.read(), 2)
        assert bytes(received) == payload
        await flow.close()
        await stack.close()

    run(main())


def test_bind_failure_is_a_platform_error() -> None:
    async def main() -> None:
        stack = SocketStack(UnixConsole("t", "error"))
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", 0))
        with pytest.raises(PlatformError, match="cannot bind UDP"):
            await stack.udp_listen("127.0.0.1", holder.getsockname()[1], lambda d, p: None)
        holder.close()
        await stack.close()

    run(main())
