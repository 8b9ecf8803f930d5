"""``local_sockets()`` on ``unix``: Unix-domain stream sockets, served as ``SocketFlow``s."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from contextlib import suppress

from fata.devices import FlowHandler, flow_failure, serve_flow
from fata.devices.local import LocalListener, LocalSockets
from fata.platform import PlatformError
from fata.platform.registry import DeviceContext
from fata.platform.socket_stack import SocketFlow, start_flow_server


class UnixListener(LocalListener):
    def __init__(self, name: str, server: asyncio.Server) -> None:
        self.name = name
        self._server = server

    def close(self) -> None:
        self._server.close()
        with suppress(OSError):
            os.unlink(self.name)


class UnixLocalSockets(LocalSockets):
    """Unix-domain sockets named by their paths."""

    def __init__(self, console) -> None:
        self._console = console
        self._listeners: list[UnixListener] = []
        self._flows: set[SocketFlow] = set()

    async def listen(self, name: str, handler: FlowHandler, *, mode: int = 0o600
                     ) -> LocalListener:
        try:
            if stat.S_ISSOCK(os.lstat(name).st_mode):
                os.unlink(name)  # left by a daemon that died: ours to replace
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PlatformError(f"cannot listen on {name}: {exc.strerror}") from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            os.chmod(name, mode)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise PlatformError(f"cannot listen on {name}: {exc.strerror}") from None
        console = self._console

        async def on_connect(flow: SocketFlow) -> None:
            await serve_flow(handler, flow, lambda exc: console.error(flow_failure(flow, exc)))

        server = await start_flow_server(on_connect, sock, backlog=128, owner=self._flows)
        listener = UnixListener(name, server)
        self._listeners.append(listener)
        return listener

    async def connect(self, name: str) -> SocketFlow:
        loop = asyncio.get_running_loop()
        try:
            _, flow = await loop.create_unix_connection(lambda: SocketFlow(owner=self._flows),
                                                        name)
        except OSError as exc:
            raise PlatformError(f"cannot connect to {name}: {exc.strerror}") from None
        return flow

    async def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        for flow in list(self._flows):
            flow.abort()
        self._listeners.clear()


async def open_local_sockets(name: str, spec: dict, ctx: DeviceContext) -> LocalSockets:
    """The host's Unix-domain sockets."""
    return UnixLocalSockets(ctx.console)
