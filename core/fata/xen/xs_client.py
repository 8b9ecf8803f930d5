"""A xenstore client: a sans-IO engine and an asyncio adapter over any ``Flow``.

:class:`ClientEngine` is the protocol: it numbers requests, frames them with
:mod:`fata.xen.xs_wire` and turns the bytes that come back into :class:`Reply` and
:class:`WatchEvent` events.  It reads no socket and has no clock, so the same engine runs
over a daemon's Unix socket and over a domain's shared-memory ring (both are a
:class:`~fata.devices.Flow`), and the tests drive it a byte at a time.

:class:`XenstoreClient` is the thin adapter: one reader task feeds the engine, each request
waits on a future keyed by its request id, so many tasks may share one connection (the
daemon answers in order, but matching by id costs nothing and keeps a confused stream from
handing one task another's answer).  An ``ERROR`` answer raises
:class:`~fata.xen.xs_wire.XenstoreError`; once the flow ends, every request in flight and
every later one raises ``ConnectionError``.

Paths, tokens and values are ``bytes``; ``str`` is accepted too and sent as UTF-8, since
most paths a driver writes are literals.  Permissions are the wire's strings, a letter
(``n`` none, ``r`` read, ``w`` write, ``b`` both) and a domain id: ``[b"n0", b"r1"]`` is
"owned by dom0, nobody else, except that domain 1 may read".  The first entry names the
owner and the access of every domain not listed; typed wrappers would only restate that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

from fata.devices import Flow
from fata.xen.xs_wire import (
    ERRORS,
    PAYLOAD_MAX,
    Message,
    MessageReader,
    Op,
    WireError,
    XenstoreError,
    strings_payload,
)

Text = bytes | str
"""A path, token, value or permission: bytes, or text sent as UTF-8."""

T = TypeVar("T")

TRANSACTION_ATTEMPTS = 8
"""How often :meth:`XenstoreClient.transaction` runs its body before giving up on EAGAIN."""

DIRECTORY_ATTEMPTS = 8
"""How often a listing in parts restarts because the directory changed under it."""

REQ_ID_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to request ``req_id``: ``error`` is the code of an ``ERROR`` answer (an
    unknown one reads ``EINVAL``, as libxenstore has it), else None."""

    req_id: int
    message: Message
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """``path`` changed (or a watch was just registered on it) under watch ``token``."""

    path: bytes
    token: bytes


Event = Reply | WatchEvent


class ClientEngine:
    """Requests out, replies and watch events in, with no I/O.

    Request ids run from 1 up and wrap at 2**32, skipping any still in flight (0 is never
    used, so it stays the id of the daemon's unsolicited watch events).  A reply must answer
    a request in flight with that request's type or ``ERROR``; anything else, like a frame
    over :data:`PAYLOAD_MAX`, means the stream cannot be trusted: :meth:`receive` raises
    :class:`WireError` then and on every later call.
    """

    def __init__(self) -> None:
        self._reader = MessageReader()
        self._in_flight: dict[int, int] = {}  # request id -> its type
        self._next_id = 1
        self.broken = False

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._in_flight)

    def request(self, op: Op, *parts: bytes, tx: int = 0) -> tuple[int, bytes]:
        """Request ``op`` on the strings ``parts`` in transaction ``tx`` (0: none): its id
        and its bytes.  Every part is NUL-terminated except a ``WRITE``'s value, which is
        sent as it is.  A payload over :data:`PAYLOAD_MAX` is ``XenstoreError("E2BIG")``,
        as libxenstore answers, before anything is sent."""
        if self.broken:
            raise WireError("the stream broke the protocol earlier")
        payload = strings_payload(parts, terminate_last=op != Op.WRITE)
        if len(payload) > PAYLOAD_MAX:
            raise XenstoreError("E2BIG", f"{len(payload)} bytes of payload")
        req_id = self._allocate()
        self._in_flight[req_id] = op
        return req_id, Message(op, req_id, tx, payload).encode()

    def _allocate(self) -> int:
        while True:
            req_id = self._next_id
            self._next_id = req_id % REQ_ID_MAX + 1
            if req_id not in self._in_flight:
                return req_id

    def receive(self, data: bytes) -> list[Event]:
        """The events the bytes ``data`` complete, in the order they came."""
        if self.broken:
            raise WireError("the stream broke the protocol earlier")
        try:
            return [self._event(msg) for msg in self._reader.feed(data)]
        except WireError:
            self.broken = True
            raise

    def _event(self, msg: Message) -> Event:
        if msg.op == Op.WATCH_EVENT:
            parts = msg.strings()
            if len(parts) < 2:
                raise WireError(f"WATCH_EVENT without a path and a token: {msg.payload!r}")
            return WatchEvent(parts[0], parts[1])
        op = self._in_flight.pop(msg.req_id, None)
        if op is None:
            raise WireError(f"an answer (type {msg.op}) to request {msg.req_id}, not in flight")
        if msg.op == Op.ERROR:
            code = msg.payload.split(b"\0", 1)[0].decode("ascii", "replace")
            return Reply(msg.req_id, msg, code if code in ERRORS else "EINVAL")
        if msg.op != op:
            raise WireError(f"request {msg.req_id} of type {op} answered with type {msg.op}")
        return Reply(msg.req_id, msg)


class XenstoreClient:
    """One connection to a xenstore daemon over ``flow``; make it inside the event loop
    that will use it (it starts the task that reads the flow).

    Watch events of every watch of this connection queue up until taken with
    :meth:`next_event` or :meth:`events`; the queue is not bounded, as libxenstore's is not,
    so a client that watches must read them.  A watch made with :meth:`subscribe` has a
    queue of its own instead, so that many drivers share one connection, each waiting only
    for its own events.
    """

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self._engine = ClientEngine()
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._sending = asyncio.Lock()  # one whole message at a time on the flow
        self._events: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._subscriptions: dict[bytes, Subscription] = {}
        self._next_token = 0
        self._ended = False
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def __aenter__(self) -> XenstoreClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def ended(self) -> bool:
        """Whether the connection is over (closed by us, or the flow ended)."""
        return self._ended

    async def close(self) -> None:
        """End the connection: requests in flight raise ``ConnectionError``, the daemon
        drops this connection's watches and open transactions."""
        with suppress(ConnectionError):
            await self._flow.close()
        self._reader.cancel()
        await asyncio.wait([self._reader])
        self._end(None)

    async def _read_loop(self) -> None:
        cause: BaseException | None = None
        try:
            while data := await self._flow.read():
                for event in self._engine.receive(data):
                    self._deliver(event)
        except WireError as exc:
            cause = exc
            self._flow.abort()
        except OSError as exc:  # a reset, or the transport's own failure
            cause = exc
        finally:
            self._end(cause)

    def _deliver(self, event: Event) -> None:
        if isinstance(event, WatchEvent):
            sub = self._subscriptions.get(event.token)
            (self._events if sub is None else sub._queue).put_nowait(event)
            return
        waiter = self._waiting.pop(event.req_id, None)
        if waiter is not None and not waiter.done():  # else its caller was cancelled
            waiter.set_result(event)

    def _end(self, cause: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        for waiter in self._waiting.values():
            if not waiter.done():
                error = ConnectionError("the xenstore connection ended")
                error.__cause__ = cause
                waiter.set_exception(error)
        self._waiting.clear()
        self._events.put_nowait(None)
        for sub in self._subscriptions.values():
            sub._queue.put_nowait(None)

    async def _call(self, op: Op, *parts: Text, tx: int = 0) -> Message:
        """Send one request and wait for its answer (``XenstoreError`` for ``ERROR``)."""
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        req_id = 0  # never a request's: nothing to forget if none was made
        try:
            async with self._sending:
                if self._ended:
                    raise ConnectionError("the xenstore connection ended")
                req_id, data = self._engine.request(op, *map(_bytes, parts), tx=tx)
                self._waiting[req_id] = waiter
                await self._flow.write(data)
            reply = await waiter
        finally:
            self._waiting.pop(req_id, None)
        if reply.error is not None:
            raise XenstoreError(reply.error)
        return reply.message

    # --- nodes -----------------------------------------------------------------------

    async def read(self, path: Text, *, tx: int = 0) -> bytes:
        """The value of the node at ``path``."""
        return (await self._call(Op.READ, path, tx=tx)).payload

    async def write(self, path: Text, value: Text, *, tx: int = 0) -> None:
        """Set the value at ``path``, creating the node and missing parents."""
        await self._call(Op.WRITE, path, value, tx=tx)

    async def mkdir(self, path: Text, *, tx: int = 0) -> None:
        """Create the node at ``path`` with an empty value (nothing if it exists)."""
        await self._call(Op.MKDIR, path, tx=tx)

    async def rm(self, path: Text, *, tx: int = 0) -> None:
        """Remove the node at ``path`` and everything below it."""
        await self._call(Op.RM, path, tx=tx)

    async def directory(self, path: Text, *, tx: int = 0) -> list[bytes]:
        """The names of the children of ``path``.

        One ``DIRECTORY`` does when the names fit in a message; when they do not (E2BIG),
        the list is fetched in ``DIRECTORY_PART``s, and started again whenever the node's
        generation shows that it changed between two parts, so the answer is one state of
        the directory, never a mix.  A daemon without ``DIRECTORY_PART`` leaves the E2BIG.
        """
        try:
            return (await self._call(Op.DIRECTORY, path, tx=tx)).strings()
        except XenstoreError as exc:
            if exc.code != "E2BIG":
                raise
        try:
            return await self._directory_in_parts(_bytes(path), tx)
        except XenstoreError as exc:
            if exc.code == "ENOSYS":
                raise XenstoreError("E2BIG", "and the daemon lists in no parts") from exc
            raise

    async def _directory_in_parts(self, path: bytes, tx: int) -> list[bytes]:
        for _ in range(DIRECTORY_ATTEMPTS):
            generation, listing, last = await self._directory_part(path, 0, tx)
            while not last:
                now, more, last = await self._directory_part(path, len(listing), tx)
                if now != generation:
                    break  # changed under us: start again
                listing += more
            else:
                return listing[:-1].split(b"\0") if listing else []
        raise XenstoreError("EAGAIN", f"{path!r} kept changing while it was listed")

    async def _directory_part(self, path: bytes, offset: int, tx: int
                              ) -> tuple[bytes, bytes, bool]:
        """(generation, NUL-terminated names from byte ``offset``, whether they are the
        last): the answer is the generation, then the names, an empty one ending the last
        part."""
        answer = await self._call(Op.DIRECTORY_PART, path, b"%d" % offset, tx=tx)
        generation, sep, names = answer.payload.partition(b"\0")
        if not sep or not names.endswith(b"\0"):  # also: no progress
            raise WireError(f"malformed DIRECTORY_PART answer {answer.payload[:64]!r}")
        if names == b"\0":
            return generation, b"", True
        if names.endswith(b"\0\0"):
            return generation, names[:-1], True
        return generation, names, False

    async def get_perms(self, path: Text, *, tx: int = 0) -> list[bytes]:
        """The permissions of ``path``, as the wire's strings (``[b"n0", b"r1"]``)."""
        return (await self._call(Op.GET_PERMS, path, tx=tx)).strings()

    async def set_perms(self, path: Text, perms: Sequence[Text], *, tx: int = 0) -> None:
        """Replace the permissions of ``path``: the owner's entry first (see the module)."""
        await self._call(Op.SET_PERMS, path, *perms, tx=tx)

    # --- watches ---------------------------------------------------------------------

    async def watch(self, path: Text, token: Text) -> None:
        """Watch ``path`` and everything below it (or ``@introduceDomain`` /
        ``@releaseDomain``); an event with ``token`` follows at once, then one per change."""
        await self._call(Op.WATCH, path, token)

    async def unwatch(self, path: Text, token: Text) -> None:
        """Remove the watch registered with this ``path`` and ``token``."""
        await self._call(Op.UNWATCH, path, token)

    async def reset_watches(self) -> None:
        """Remove every watch of this connection."""
        await self._call(Op.RESET_WATCHES, b"")

    async def subscribe(self, path: Text, token: Text | None = None) -> Subscription:
        """Watch ``path`` with its own queue of events (the first, at registration, is
        already in it when this returns); ``token`` is made unique if not given."""
        if token is None:
            self._next_token += 1
            token = b"fata-%d" % self._next_token
        sub = Subscription(self, _bytes(path), _bytes(token))
        if sub.token in self._subscriptions:
            raise ValueError(f"token {sub.token!r} is already subscribed")
        self._subscriptions[sub.token] = sub
        try:
            await self.watch(sub.path, sub.token)
        except BaseException:
            del self._subscriptions[sub.token]
            raise
        return sub

    async def next_event(self) -> WatchEvent:
        """The next watch event; ``ConnectionError`` once the connection ended and every
        event that came before was taken."""
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # every later caller learns the end too
            raise ConnectionError("the xenstore connection ended")
        return event

    async def events(self) -> AsyncIterator[WatchEvent]:
        """The watch events as they come, until the connection ends."""
        while True:
            try:
                yield await self.next_event()
            except ConnectionError:
                return

    # --- transactions ----------------------------------------------------------------

    async def transaction_start(self) -> int:
        """A new transaction's id, for the ``tx`` argument of the node operations."""
        return _number(await self._call(Op.TRANSACTION_START, b""))

    async def transaction_end(self, tx: int, *, commit: bool = True) -> None:
        """End ``tx``: apply it if ``commit`` (``EAGAIN``: something it read changed
        meanwhile, and nothing of it was applied), else drop it."""
        await self._call(Op.TRANSACTION_END, b"T" if commit else b"F", tx=tx)

    async def transaction(self, body: Callable[[int], Awaitable[T]], *,
                          attempts: int = TRANSACTION_ATTEMPTS) -> T:
        """Run ``body(tx)`` in a transaction and commit it, running it again in a fresh
        one, up to ``attempts`` times in all, while the daemon answers ``EAGAIN`` (a
        conflict: ``body`` must be safe to run again).  Any other exception ends the
        transaction uncommitted and propagates; what ``body`` returns is returned."""
        if attempts < 1:
            raise ValueError("a transaction needs at least one attempt")
        conflict = XenstoreError("EAGAIN")
        for _ in range(attempts):
            tx = await self.transaction_start()
            try:
                result = await body(tx)
            except XenstoreError as exc:
                await self._abandon(tx)
                if exc.code != "EAGAIN":
                    raise
                conflict = exc
                continue
            except BaseException:
                await self._abandon(tx)
                raise
            try:
                await self.transaction_end(tx)
            except XenstoreError as exc:
                if exc.code != "EAGAIN":
                    raise
                conflict = exc
                continue
            return result
        raise conflict

    async def _abandon(self, tx: int) -> None:
        """End ``tx`` uncommitted, on the way out of a failure that matters more."""
        with suppress(XenstoreError, ConnectionError):
            await self.transaction_end(tx, commit=False)

    # --- domains ---------------------------------------------------------------------

    async def get_domain_path(self, domid: int) -> bytes:
        """Where domain ``domid``'s own nodes live (``/local/domain/<domid>``)."""
        answer = await self._call(Op.GET_DOMAIN_PATH, b"%d" % domid)
        parts = answer.strings()
        if len(parts) != 1:
            raise WireError(f"malformed GET_DOMAIN_PATH answer {answer.payload[:64]!r}")
        return parts[0]

    async def is_domain_introduced(self, domid: int) -> bool:
        """Whether the daemon knows domain ``domid``."""
        answer = await self._call(Op.IS_DOMAIN_INTRODUCED, b"%d" % domid)
        if answer.payload not in (b"T\0", b"F\0"):
            raise WireError(f"malformed IS_DOMAIN_INTRODUCED answer {answer.payload[:64]!r}")
        return answer.payload == b"T\0"

    async def introduce(self, domid: int, mfn: int, port: int) -> None:
        """Tell the daemon that domain ``domid`` has its ring in page ``mfn``, signalled
        through event channel ``port``; answered once the daemon serves it."""
        await self._call(Op.INTRODUCE, b"%d" % domid, b"%d" % mfn, b"%d" % port)

    async def release(self, domid: int) -> None:
        """Domain ``domid`` is gone: the daemon stops serving it."""
        await self._call(Op.RELEASE, b"%d" % domid)

    async def set_target(self, domid: int, target: int) -> None:
        """Give domain ``domid`` (a device model) the rights of domain ``target``."""
        await self._call(Op.SET_TARGET, b"%d" % domid, b"%d" % target)

    async def resume(self, domid: int) -> None:
        """Domain ``domid`` resumed (after a suspend or a migration)."""
        await self._call(Op.RESUME, b"%d" % domid)

    # --- features and quotas (Xen 4.20) ----------------------------------------------

    async def get_feature(self, domid: int | None = None) -> int:
        """The ``XENSTORE_SERVER_FEATURE_*`` bits the daemon offers this connection's domain,
        or (privileged) domain ``domid``'s ring."""
        parts = () if domid is None else (b"%d" % domid,)
        return _number(await self._call(Op.GET_FEATURE, *parts))

    async def set_feature(self, domid: int, features: int) -> None:
        """Limit what domain ``domid``'s ring will advertise, before it is introduced."""
        await self._call(Op.SET_FEATURE, b"%d" % domid, b"%d" % features)

    async def quota_names(self) -> list[bytes]:
        """The names of the quotas the daemon has (``nodes``, ``watches``, ...)."""
        answer = await self._call(Op.GET_QUOTA)
        return answer.payload.rstrip(b"\0").split()

    async def get_quota(self, name: Text, domid: int | None = None) -> int:
        """Quota ``name``: the global default, or domain ``domid``'s; 0 is unlimited."""
        parts = (_bytes(name),) if domid is None else (b"%d" % domid, _bytes(name))
        return _number(await self._call(Op.GET_QUOTA, *parts))

    async def set_quota(self, name: Text, value: int, domid: int | None = None) -> None:
        """Set quota ``name`` globally (for domains without their own) or for ``domid``."""
        head = () if domid is None else (b"%d" % domid,)
        await self._call(Op.SET_QUOTA, *head, _bytes(name), b"%d" % value)


class Subscription:
    """One watch of a :class:`XenstoreClient` with its own event queue; ``close`` (or
    leaving an ``async with``) removes the watch."""

    def __init__(self, client: XenstoreClient, path: bytes, token: bytes) -> None:
        self.path, self.token = path, token
        self._client = client
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def next(self) -> WatchEvent:
        """The next event of this watch; ``ConnectionError`` once the connection ended."""
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)
            raise ConnectionError("the xenstore connection ended")
        return event

    def pending(self) -> bool:
        """Whether an event is waiting (so a caller can drain a burst before acting)."""
        return not self._queue.empty()

    async def close(self) -> None:
        """Remove the watch; events the daemon sent before its answer still land here
        (it answers in order), so none reach the connection's shared queue."""
        if self._client._subscriptions.get(self.token) is not self:
            return
        with suppress(XenstoreError, ConnectionError):
            await self._client.unwatch(self.path, self.token)
        self._client._subscriptions.pop(self.token, None)


def _bytes(text: Text) -> bytes:
    return text.encode() if isinstance(text, str) else text


def _number(answer: Message) -> int:
    digits = answer.payload.rstrip(b"\0")
    if not digits.isdigit():
        raise WireError(f"expected a number, got {answer.payload[:64]!r}")
    return int(digits)
