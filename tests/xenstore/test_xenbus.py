"""xenbus: the frontend and backend machines alone, through every ordering in which their
states can reach each other (hypothesis, with watch events coalesced as a driver that reads
the latest state sees them), and the drivers over a xenstore daemon, each side as an
unprivileged domain holding only the permissions the toolstack gave it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from fata.xen.xenbus import (
    BackendMachine,
    Connect,
    Device,
    Disconnect,
    FrontendMachine,
    Switch,
    XenbusDriver,
    XenbusState,
    create_device,
    read_state,
    remove_device,
)
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError
from hypothesis import given, settings
from hypothesis import strategies as st
from test_xs_client import InProcessDaemon

S = XenbusState
TIMEOUT = 30


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT):
            await coro
    asyncio.run(bounded())


# --- the machines alone ----------------------------------------------------------------

class Pair:
    """Two machines and the states they published; ``notify[side]`` says the peer
    changed since that side last looked (one flag: watch events coalesce)."""

    def __init__(self, connected_state: S = S.INITIALISED) -> None:
        self.front, self.back = FrontendMachine(connected_state), BackendMachine()
        self.published = {"front": S.INITIALISING, "back": S.INITIALISING}
        self.notify = {"front": False, "back": False}
        self.log: list[tuple[str, object]] = []

    def machine(self, side: str) -> FrontendMachine | BackendMachine:
        return self.front if side == "front" else self.back

    def apply(self, side: str, actions: list[object]) -> None:
        peer = "back" if side == "front" else "front"
        for action in actions:
            self.log.append((side, action))
            if isinstance(action, Switch):
                if self.published[side] != action.state:
                    self.published[side] = action.state
                    self.notify[peer] = True

    def start(self, side: str) -> None:
        self.apply(side, self.machine(side).start())
        self.notify[side] = True  # the watch's own first event

    def look(self, side: str) -> None:
        peer = "back" if side == "front" else "front"
        self.notify[side] = False
        self.apply(side, self.machine(side).peer(self.published[peer]))

    def settle(self, choices: list[bool]) -> None:
        """Deliver notifications until none is due, ``choices`` saying who goes first."""
        for step in range(1000):
            due = [side for side in ("front", "back") if self.notify[side]]
            if not due:
                return
            pick = choices[step % len(choices)] if choices else False
            self.look(due[int(pick) % len(due)])
        raise AssertionError(f"the handshake does not settle: {self.log}")

    def count(self, side: str, kind: type) -> int:
        return sum(1 for who, action in self.log if who == side and isinstance(action, kind))


orders = st.lists(st.booleans(), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(orders, st.booleans(), st.sampled_from([S.INITIALISED, S.CONNECTED]))
def test_the_handshake_connects_in_every_order(choices: list[bool], front_first: bool,
                                               connected_state: S) -> None:
    pair = Pair(connected_state)
    for side in (("front", "back") if front_first else ("back", "front")):
        pair.start(side)
    pair.settle(choices)
    assert pair.published == {"front": S.CONNECTED, "back": S.CONNECTED}
    assert [pair.count(side, Connect) for side in ("front", "back")] == [1, 1]
    assert pair.count("front", Disconnect) == pair.count("back", Disconnect) == 0


@settings(max_examples=200, deadline=None)
@given(orders, st.sampled_from(["front", "back"]))
def test_either_side_closing_closes_both(choices: list[bool], closer: str) -> None:
    pair = Pair()
    pair.start("back")
    pair.start("front")
    pair.settle(choices)
    pair.apply(closer, pair.machine(closer).close())
    pair.settle(choices)
    assert pair.published == {"front": S.CLOSED, "back": S.CLOSED} or (
        closer == "back" and pair.published == {"front": S.CLOSED, "back": S.CLOSING})
    assert [pair.count(side, Disconnect) for side in ("front", "back")] == [1, 1]


@settings(max_examples=100, deadline=None)
@given(orders, st.sampled_from(["front", "back"]))
def test_a_side_that_dies_is_noticed_and_a_new_one_reconnects(choices: list[bool],
                                                             dead: str) -> None:
    pair = Pair()
    pair.start("back")
    pair.start("front")
    pair.settle(choices)
    survivor = "back" if dead == "front" else "front"
    pair.published[dead] = S.UNKNOWN  # the toolstack removed the dead side's directory
    pair.notify[survivor] = True
    pair.settle(choices)
    assert pair.published[survivor] == S.CLOSED and pair.count(survivor, Disconnect) == 1
    if dead == "front":  # a new frontend starts
        pair.front = FrontendMachine()
    else:
        pair.back = BackendMachine()
    pair.published[dead] = S.INITIALISING  # the toolstack made the device again
    pair.notify[survivor] = True
    pair.start(dead)
    pair.settle(choices)
    assert pair.published == {"front": S.CONNECTED, "back": S.CONNECTED}
    assert pair.count(survivor, Connect) == 2


def test_a_frontend_refuses_an_impossible_connected_state() -> None:
    with pytest.raises(ValueError):
        FrontendMachine(S.CLOSING)


def test_a_frontend_ignores_a_backend_that_is_not_ready() -> None:
    front = FrontendMachine()
    assert front.peer(S.INITIALISING) == [] and front.peer(S.CONNECTED) == []
    assert front.peer(S.INIT_WAIT) == [Connect(), Switch(S.INITIALISED)]
    assert front.peer(S.INIT_WAIT) == []  # connected once only
    assert front.peer(S.CONNECTED) == [Switch(S.CONNECTED)]


# --- the drivers over a daemon ---------------------------------------------------------

DEVICE = Device("vif", frontend_id=5, backend_id=3, devid=0)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def callbacks(self, side: str):
        async def connect() -> None:
            self.calls.append(f"{side} connect")

        async def disconnect() -> None:
            self.calls.append(f"{side} disconnect")
        return connect, disconnect


async def until(driver: XenbusDriver, *states: S) -> None:
    await asyncio.wait_for(driver.wait_for(*states), TIMEOUT)


def test_drivers_connect_close_and_reconnect_through_the_daemon() -> None:
    async def scenario() -> None:
        daemon = InProcessDaemon()
        dom0 = XenstoreClient(await daemon.connect())
        front_xs = XenstoreClient(await daemon.connect(domid=5))
        back_xs = XenstoreClient(await daemon.connect(domid=3))
        await create_device(dom0, DEVICE, backend={"feature-rx-copy": "1"})
        # each side reads the other's directory, and writes only its own
        assert await front_xs.read(f"{DEVICE.backend}/feature-rx-copy") == b"1"
        with pytest.raises(XenstoreError) as err:
            await front_xs.write(f"{DEVICE.backend}/state", "4")
        assert err.value.code == "EACCES"
        rec = Recorder()
        back = XenbusDriver.backend(back_xs, DEVICE, *rec.callbacks("back"))
        front = XenbusDriver.frontend(front_xs, DEVICE, *rec.callbacks("front"),
                                      connected_state=S.CONNECTED)
        tasks = [asyncio.create_task(back.run()), asyncio.create_task(front.run())]
        await until(front, S.CONNECTED)
        await until(back, S.CONNECTED)
        assert rec.calls == ["front connect", "back connect"]
        assert await read_state(dom0, DEVICE.frontend) == S.CONNECTED
        await front.close()
        await until(back, S.CLOSED)
        assert rec.calls[2:] == ["front disconnect", "back disconnect"]
        # a new frontend (its driver reloaded) connects again to the same backend
        tasks[1].cancel()
        front = XenbusDriver.frontend(front_xs, DEVICE, *rec.callbacks("front2"))
        tasks[1] = asyncio.create_task(front.run())
        await until(front, S.CONNECTED)
        assert rec.calls[4:] == ["front2 connect", "back connect"]
        # the backend's domain dies: the toolstack removes its directory, the frontend
        # notices, closes, and connects again to the backend that takes its place
        tasks[0].cancel()
        await dom0.rm(DEVICE.backend)
        await until(front, S.CLOSED)
        assert rec.calls[6:] == ["front2 disconnect"]
        assert await read_state(dom0, DEVICE.frontend) == S.CLOSED
        await create_device(dom0, DEVICE)
        back = XenbusDriver.backend(back_xs, DEVICE, *rec.callbacks("back2"))
        tasks[0] = asyncio.create_task(back.run())
        await until(front, S.CONNECTED)
        await until(back, S.CONNECTED)
        assert rec.calls[7:] == ["front2 connect", "back2 connect"]
        # the whole device removed: the frontend tears down and has nothing to publish on
        await remove_device(dom0, DEVICE)
        await until(front, S.CLOSED)
        await until(back, S.CLOSED)
        assert sorted(rec.calls[9:]) == ["back2 disconnect", "front2 disconnect"]
        assert await read_state(dom0, DEVICE.backend) == S.UNKNOWN
        assert not any(task.done() for task in tasks)  # both still serving
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for xs in (dom0, front_xs, back_xs):
            await xs.close()
    run(scenario())


def test_subscriptions_get_only_their_own_events() -> None:
    async def scenario() -> None:
        daemon = InProcessDaemon()
        async with XenstoreClient(await daemon.connect()) as xs:
            a = await xs.subscribe("/a")
            b = await xs.subscribe("/b", "tok-b")
            await xs.watch("/c", "plain")
            assert (await a.next()).path == b"/a" and (await b.next()).token == b"tok-b"
            await xs.write("/b/x", "1")
            await xs.write("/a/y", "1")
            await xs.write("/c/z", "1")
            assert (await a.next()).path == b"/a/y" and (await b.next()).path == b"/b/x"
            assert not a.pending() and not b.pending()
            assert (await xs.next_event()).path == b"/c"  # the plain watch's queue
            assert (await xs.next_event()).path == b"/c/z"
            await a.close()
            await xs.write("/a/again", "1")
            await xs.write("/c/sync", "1")
            assert (await xs.next_event()).path == b"/c/sync"  # /a's event went nowhere
            with pytest.raises(ValueError):
                await xs.subscribe("/d", "tok-b")
        with pytest.raises(ConnectionError):
            await b.next()
    run(scenario())
