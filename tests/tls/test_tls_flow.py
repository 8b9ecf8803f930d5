"""The Flow adapter over a real ``fata.devices.Stack`` (the host-socket stack): a TLS server
and a TLS client, both as appliances would use them, with large transfers in both
directions, resumption, and a failed handshake surfacing as ``ConnectionError``."""

from __future__ import annotations

import asyncio

import pytest
from fata.platform import socket_stack, unix
from fata.tls import AlertDescription, TLSConfig
from fata.tls.flow import TLSHandshakeError, accept, connect

from ._helpers import certified, client_config, run


def _stack():
    return socket_stack.SocketStack(unix.UnixConsole("tls-test", level="error"))


def test_tls_over_stack_flows(pki, trust):
    # The Random and Clock devices an appliance would be handed.
    rng, clock = unix.UnixRandom(), unix.UnixClock()
    server_cfg = TLSConfig(
        random=rng.bytes, certificates=[certified(pki, "p256")], alpn_protocols=["echo"]
    )

    async def go():
        stack = _stack()
        accepted: list = []

        async def handler(flow):
            tls = await accept(flow, server_cfg, clock=clock.time)
            accepted.append(tls.handshake)
            while data := await tls.read():
                await tls.write(data)
            await tls.close()

        listener = await stack.tcp_listen("127.0.0.1", 0, handler)
        port = listener.local[1]
        cfg = client_config(trust, alpn_protocols=["echo"], random=rng.bytes)
        tls = await connect(
            await stack.tcp_connect("127.0.0.1", port), cfg, "localhost", clock=clock.time
        )
        assert tls.handshake.alpn == "echo"
        payload = bytes(range(256)) * 4096  # 1 MiB
        writer = asyncio.create_task(tls.write(payload))
        got = bytearray()
        while len(got) < len(payload):
            got += await tls.read()
        await writer
        assert bytes(got) == payload
        ticket = tls.tickets[0]
        await tls.close()
        assert await tls.read() == b""  # the server's close_notify
        again = await connect(
            await stack.tcp_connect("127.0.0.1", port),
            cfg,
            "localhost",
            session=ticket,
            clock=clock.time,
        )
        assert again.handshake.resumed
        await again.close()
        with pytest.raises(TLSHandshakeError) as exc:
            await connect(
                await stack.tcp_connect("127.0.0.1", port), cfg, "elsewhere.test", clock=clock.time
            )
        assert exc.value.closed.alert == AlertDescription.bad_certificate
        listener.close()
        await stack.close()
        return accepted

    accepted = run(go())
    assert len(accepted) == 2 and accepted[1].resumed
