"""The controller role (``fata build appliances/openflow_switch --key role=controller``):
the learning-switch controller on a TCP listener of the stack.

Nothing here knows OpenFlow: each accepted connection is a :class:`.controller.Datapath`
of one :class:`.controller.Controller` running :class:`.l2_controller.L2Learning`; what the
switch sends is fed to it with the ``Clock`` device's time, and the bytes it queues in
answer are written back before the next read, so a switch that floods PACKET_INs is
slowed by its own TCP window, never by an unbounded queue here.
"""

from __future__ import annotations

import argparse

from fata.devices import Clock, Console, Flow, Lifecycle, Stack

from .controller import Controller, State
from .l2_controller import L2Learning


class ControllerAppliance:
    """The controller engine and the connections it serves."""

    def __init__(self, clock: Clock, console: Console, args: argparse.Namespace) -> None:
        self.clock, self.console = clock, console
        self.app = L2Learning(aging=args.mac_aging, idle_timeout=args.idle_timeout,
                              hard_timeout=args.hard_timeout)
        self.controller = Controller([self.app])
        self.connections = 0

    async def serve(self, flow: Flow) -> None:
        """One switch until its connection ends."""
        controller, clock = self.controller, self.clock
        dp = controller.connect()
        self.connections += 1
        peer = f"{flow.peer[0]}:{flow.peer[1]}"
        reason = "closed by the switch"
        joined = False
        try:
            await flow.write(dp.data_to_send())
            while True:
                data = await flow.read()
                if not data:
                    break
                out = controller.receive(dp, data, clock.monotonic())
                if dp.joined and not joined:
                    joined = True
                    self.console.info(f"datapath 0x{dp.datapath_id:016x} joined from {peer} "
                                      f"(OpenFlow 0x{dp.version:02x})")
                if out:
                    await flow.write(out)
                if dp.state is State.CLOSED:
                    reason = "closed by the controller"
                    break
        except OSError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            controller.disconnect(dp, reason)
        if joined:
            self.console.info(f"datapath 0x{dp.datapath_id:016x} left: {reason}; "
                              f"{dp.received} messages in, {dp.sent} commands out")
        else:
            self.console.debug(f"switch {peer} never joined: {reason}")


async def start(*, stack: Stack, clock: Clock, console: Console, lifecycle: Lifecycle,
                args: argparse.Namespace) -> None:
    """Serve switches until stopped."""
    app = ControllerAppliance(clock, console, args)
    listener = await stack.tcp_listen(args.listen or None, args.port, app.serve)
    host, port = listener.local[0], listener.local[1]
    console.info(f"controller up: listening on {host}:{port} (OpenFlow 1.0 and 1.3), "
                 "learning switch")
    try:
        await lifecycle.wait_stopped()
    finally:
        listener.close()
        a = app.app
        console.info(f"controller down: {app.connections} switch connections; "
                     f"{a.installed} flows installed, {a.flooded} floods, {a.dropped} "
                     "dropped")
