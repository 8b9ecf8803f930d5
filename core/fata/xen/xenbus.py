"""xenbus: how a frontend and a backend find each other and agree on a device, through
xenstore keys, as Linux's and MirageOS's split drivers do (Xen's ``xen/io/xenbus.h``).

The toolstack makes two directories (:func:`create_device`): the frontend's,
``/local/domain/<fe>/device/<kind>/<devid>``, owned by the frontend and readable by the
backend, naming ``backend`` and ``backend-id``; and the backend's,
``/local/domain/<be>/backend/<kind>/<fe>/<devid>``, owned by the backend and readable by
the frontend, naming ``frontend`` and ``frontend-id``.  Each side publishes its ``state``
and watches the other's.  The handshake (the states of ``xenbus.h``):

- the backend writes what it offers (``feature-*``) and goes to ``InitWait``;
- the frontend, seeing ``InitWait``, makes its rings, grants them and writes
  ``ring-ref``, ``event-channel`` and what it wants, then goes to ``Initialised`` (or
  straight to ``Connected`` where the driver needs no answer, as netfront does);
- the backend, seeing ``Initialised`` or ``Connected``, maps the rings, binds the channel
  and goes to ``Connected``; the frontend, seeing that, is ``Connected`` too;
- either side going to ``Closing`` makes the other disconnect and go ``Closing`` then
  ``Closed``; a side whose peer is gone (its ``state`` node removed, or ``Closed``)
  disconnects too, and a frontend goes back to ``Initialising`` to connect again when the
  backend returns (a backend back in ``InitWait``); a backend sees a new frontend's
  ``Initialising`` and goes back to ``InitWait``.  A side that has not connected yet
  waits through a peer's ``Closed``: it is the peer of a previous run.

:class:`FrontendMachine` and :class:`BackendMachine` are that logic alone: the peer's
state in, what to do out (:class:`Connect`, :class:`Disconnect`, :class:`Switch`), no
xenstore and no clock, so the tests run every ordering of the handshake.
:class:`XenbusDriver` is the thin adapter: it watches the peer's ``state`` with a
:class:`~fata.xen.xs_client.XenstoreClient` subscription and carries the actions out with
the driver's ``connect`` and ``disconnect`` callbacks.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError


class XenbusState(enum.IntEnum):
    """``enum xenbus_state`` of ``xen/io/xenbus.h``."""

    UNKNOWN = 0
    INITIALISING = 1
    INIT_WAIT = 2
    INITIALISED = 3
    CONNECTED = 4
    CLOSING = 5
    CLOSED = 6
    RECONFIGURING = 7
    RECONFIGURED = 8


@dataclass(frozen=True, slots=True)
class Device:
    """Which device: its kind (``vif``, ``vbd``, ``console``), its frontend and backend
    domains, and its number among the frontend's devices of that kind."""

    kind: str
    frontend_id: int
    backend_id: int
    devid: int

    @property
    def frontend(self) -> str:
        return f"/local/domain/{self.frontend_id}/device/{self.kind}/{self.devid}"

    @property
    def backend(self) -> str:
        return (f"/local/domain/{self.backend_id}/backend/{self.kind}/{self.frontend_id}/"
                f"{self.devid}")


# --- what a machine asks for -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Switch:
    """Publish this side's new state."""

    state: XenbusState


@dataclass(frozen=True, slots=True)
class Connect:
    """Set the device up: a frontend makes and advertises its rings, a backend maps the
    ones advertised."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Tear the device's rings and channel down (the peer is going or gone)."""


Action = Switch | Connect | Disconnect


class FrontendMachine:
    """A frontend's side of the handshake; ``connected_state`` is the state it goes to once
    its rings are advertised (``INITIALISED`` for blkfront, ``CONNECTED`` for netfront)."""

    def __init__(self, connected_state: XenbusState = XenbusState.INITIALISED) -> None:
        if connected_state not in (XenbusState.INITIALISED, XenbusState.CONNECTED):
            raise ValueError("a frontend advertises its rings as Initialised or Connected")
        self.state = XenbusState.INITIALISING
        self.connected_state = connected_state
        self.up = False  # rings made and advertised, not yet torn down

    def start(self) -> list[Action]:
        return [Switch(XenbusState.INITIALISING)]

    def peer(self, backend: XenbusState) -> list[Action]:
        """The backend's state changed (``UNKNOWN``: its node is gone)."""
        out: list[Action] = []
        if backend == XenbusState.INIT_WAIT:
            if self.state in (XenbusState.CLOSED, XenbusState.CLOSING):
                out += self._switch(XenbusState.INITIALISING)
            if self.state == XenbusState.INITIALISING and not self.up:
                self.up = True
                out += [Connect(), *self._switch(self.connected_state)]
        elif backend == XenbusState.CONNECTED:
            if self.up and self.state == XenbusState.INITIALISED:
                out += self._switch(XenbusState.CONNECTED)
        elif backend == XenbusState.CLOSING:
            out += self._close(XenbusState.CLOSING)
            out += self._switch(XenbusState.CLOSED)
        elif backend in (XenbusState.CLOSED, XenbusState.UNKNOWN):
            if self.up or self.state != XenbusState.INITIALISING:  # else: wait for one
                out += self._close(XenbusState.CLOSED)
        return out

    def close(self) -> list[Action]:
        """This frontend is going away (its driver stops)."""
        return self._close(XenbusState.CLOSING) + self._switch(XenbusState.CLOSED)

    def _close(self, state: XenbusState) -> list[Action]:
        out: list[Action] = []
        if self.up:
            self.up = False
            out.append(Disconnect())
        return out + self._switch(state)

    def _switch(self, state: XenbusState) -> list[Action]:
        if self.state == state:
            return []
        self.state = state
        return [Switch(state)]


class BackendMachine:
    """A backend's side of the handshake."""

    def __init__(self) -> None:
        self.state = XenbusState.INITIALISING
        self.up = False  # the frontend's rings mapped

    def start(self) -> list[Action]:
        """Features written: wait for a frontend."""
        self.state = XenbusState.INIT_WAIT
        return [Switch(XenbusState.INIT_WAIT)]

    def peer(self, frontend: XenbusState) -> list[Action]:
        """The frontend's state changed (``UNKNOWN``: its node is gone)."""
        out: list[Action] = []
        if frontend in (XenbusState.INITIALISED, XenbusState.CONNECTED):
            if self.state == XenbusState.INIT_WAIT and not self.up:
                self.up = True
                out += [Connect(), *self._switch(XenbusState.CONNECTED)]
        elif frontend == XenbusState.INITIALISING:
            if self.state in (XenbusState.CLOSED, XenbusState.CLOSING):
                out += self._down() + self._switch(XenbusState.INIT_WAIT)  # reconnecting
        elif self.state == XenbusState.INIT_WAIT and not self.up:
            pass  # no frontend yet, or one that left before connecting: wait for the next
        elif frontend == XenbusState.CLOSING:
            out += self._down() + self._switch(XenbusState.CLOSING)
        elif frontend in (XenbusState.CLOSED, XenbusState.UNKNOWN):
            out += self._down() + self._switch(XenbusState.CLOSED)
        return out

    def close(self) -> list[Action]:
        """This backend is going away: tell the frontend first."""
        return self._down() + self._switch(XenbusState.CLOSING)

    def _down(self) -> list[Action]:
        if not self.up:
            return []
        self.up = False
        return [Disconnect()]

    def _switch(self, state: XenbusState) -> list[Action]:
        if self.state == state:
            return []
        self.state = state
        return [Switch(state)]


# --- xenstore --------------------------------------------------------------------------

async def create_device(xs: XenstoreClient, device: Device,
                        frontend: Mapping[str, str] | None = None,
                        backend: Mapping[str, str] | None = None) -> None:
    """The toolstack's part (domain 0): both directories in one transaction, each owned by
    its side and readable by the other, both sides ``Initialising``."""
    fe, be = device.frontend, device.backend

    async def body(tx: int) -> None:
        entries = {f"{fe}/backend": be, f"{fe}/backend-id": str(device.backend_id),
                   f"{fe}/state": str(int(XenbusState.INITIALISING)),
                   f"{be}/frontend": fe, f"{be}/frontend-id": str(device.frontend_id),
                   f"{be}/online": "1", f"{be}/state": str(int(XenbusState.INITIALISING))}
        entries |= {f"{fe}/{key}": value for key, value in (frontend or {}).items()}
        entries |= {f"{be}/{key}": value for key, value in (backend or {}).items()}
        for path, value in entries.items():
            await xs.write(path, value, tx=tx)
        for top, owner, reader in ((fe, device.frontend_id, device.backend_id),
                                   (be, device.backend_id, device.frontend_id)):
            for path in [top, *(p for p in entries if p.startswith(top + "/"))]:
                await xs.set_perms(path, [f"n{owner}", f"r{reader}"], tx=tx)

    await xs.transaction(body)


async def remove_device(xs: XenstoreClient, device: Device) -> None:
    """The toolstack's cleanup once a side is gone: both directories."""
    async def body(tx: int) -> None:
        for path in (device.frontend, device.backend):
            await xs.rm(path, tx=tx)
    await xs.transaction(body)


async def read_state(xs: XenstoreClient, directory: str) -> XenbusState:
    """A side's state; ``UNKNOWN`` if its node is gone or not a state (Linux's
    ``xenbus_read_driver_state``)."""
    try:
        raw = await xs.read(f"{directory}/state")
    except XenstoreError as exc:
        if exc.code in ("ENOENT", "EACCES"):
            return XenbusState.UNKNOWN
        raise
    try:
        return XenbusState(int(raw))
    except ValueError:
        return XenbusState.UNKNOWN


async def switch_state(xs: XenstoreClient, directory: str, state: XenbusState) -> None:
    """Publish ``state`` (unchanged values are not written, so the peer sees no event)."""
    async def body(tx: int) -> None:
        try:
            if await xs.read(f"{directory}/state", tx=tx) == b"%d" % state:
                return
        except XenstoreError as exc:
            if exc.code != "ENOENT":
                raise
        await xs.write(f"{directory}/state", str(int(state)), tx=tx)
    await xs.transaction(body)


Callback = Callable[[], Awaitable[None]]


class XenbusDriver:
    """Runs a machine for one device: this side's directory ``ours``, the peer's
    ``theirs``; ``connect`` and ``disconnect`` do the driver's work (rings, grants,
    channels), ``on_state`` hears every state this side publishes."""

    def __init__(self, xs: XenstoreClient, machine: FrontendMachine | BackendMachine,
                 ours: str, theirs: str, connect: Callback, disconnect: Callback) -> None:
        self.xs, self.machine, self.ours, self.theirs = xs, machine, ours, theirs
        self._connect, self._disconnect = connect, disconnect
        self.published = XenbusState.UNKNOWN  # the last state written to xenstore
        self.changed = asyncio.Event()  # set after each state this side publishes

    @classmethod
    def frontend(cls, xs: XenstoreClient, device: Device, connect: Callback,
                 disconnect: Callback,
                 connected_state: XenbusState = XenbusState.INITIALISED) -> XenbusDriver:
        return cls(xs, FrontendMachine(connected_state), device.frontend, device.backend,
                   connect, disconnect)

    @classmethod
    def backend(cls, xs: XenstoreClient, device: Device, connect: Callback,
                disconnect: Callback) -> XenbusDriver:
        return cls(xs, BackendMachine(), device.backend, device.frontend, connect,
                   disconnect)

    @property
    def state(self) -> XenbusState:
        return self.machine.state

    async def run(self) -> None:
        """Serve the device until the connection ends or the task is cancelled; the peer's
        every state change is acted on in order."""
        await self._do(self.machine.start())
        async with await self.xs.subscribe(f"{self.theirs}/state") as sub:
            while True:
                await sub.next()
                while sub.pending():  # a burst of changes: act on the latest state
                    await sub.next()
                await self._do(self.machine.peer(await read_state(self.xs, self.theirs)))

    async def close(self) -> None:
        """Leave in order: the peer is told, the rings go."""
        await self._do(self.machine.close())

    async def wait_for(self, *states: XenbusState) -> XenbusState:
        """Until this side has published one of ``states``."""
        while self.published not in states:
            self.changed.clear()
            await self.changed.wait()
        return self.published

    async def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Connect):
                await self._connect()
            elif isinstance(action, Disconnect):
                await self._disconnect()
            else:
                try:
                    await switch_state(self.xs, self.ours, action.state)
                except XenstoreError as exc:
                    if exc.code not in ("EACCES", "ENOENT") or await self._ours_exists():
                        raise
                    # the toolstack removed the device: there is nothing to publish on
                self.published = action.state
                self.changed.set()

    async def _ours_exists(self) -> bool:
        try:
            await self.xs.read(self.ours)
        except XenstoreError as exc:
            if exc.code in ("ENOENT", "EACCES"):
                return False
            raise
        return True
