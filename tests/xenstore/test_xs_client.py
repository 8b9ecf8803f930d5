"""Fata's xenstore client: the sans-IO engine on bytes (every request's encoding, replies
split at every byte, watch events among replies, errors, broken streams), the adapter
against a scripted peer (exact requests, exact decoding, the connection ending), and the
same scenarios against the daemon's engine in this process and against the running
appliance over its Unix socket."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
from fata.devices import Flow
from fata.platform.local_unix import UnixLocalSockets
from fata.platform.unix import UnixConsole
from fata.xen.xs_client import (
    DIRECTORY_ATTEMPTS,
    REQ_ID_MAX,
    ClientEngine,
    Reply,
    WatchEvent,
    XenstoreClient,
)
from fata.xen.xs_wire import HEADER, Message, MessageReader, Op, WireError, XenstoreError, watch_event
from fata_xenstore_stub.daemon import Daemon, Session
from test_xs_appliance import daemon  # noqa: F401 -- the running appliance's fixture

TIMEOUT = 30  # a hang fails the test instead of stalling the run


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT):
            await coro
    asyncio.run(bounded())


# --- the engine ----------------------------------------------------------------------

@pytest.mark.parametrize(("op", "parts", "tx", "payload"), [
    (Op.READ, [b"/a"], 0, b"/a\x00"),
    (Op.WRITE, [b"/a", b"val"], 3, b"/a\x00val"),
    (Op.WRITE, [b"/a", b""], 0, b"/a\x00"),
    (Op.TRANSACTION_START, [b""], 0, b"\x00"),
    (Op.WATCH, [b"/a", b"tok"], 0, b"/a\x00tok\x00"),
    (Op.INTRODUCE, [b"3", b"4096", b"7"], 0, b"3\x004096\x007\x00"),
])
def test_engine_encodes_a_request(op: Op, parts: list[bytes], tx: int, payload: bytes) -> None:
    req_id, data = ClientEngine().request(op, *parts, tx=tx)
    assert req_id == 1
    assert data == HEADER.pack(op, 1, tx, len(payload)) + payload


def test_engine_request_ids_count_up_wrap_and_skip_those_in_flight() -> None:
    engine = ClientEngine()
    assert [engine.request(Op.READ, b"/a")[0] for _ in range(3)] == [1, 2, 3]
    engine._next_id = REQ_ID_MAX  # 2**32 requests later
    assert [engine.request(Op.READ, b"/a")[0] for _ in range(2)] == [REQ_ID_MAX, 4]
    assert engine.in_flight == 5


def test_engine_refuses_a_request_over_the_payload_limit() -> None:
    engine = ClientEngine()
    with pytest.raises(XenstoreError) as err:
        engine.request(Op.WRITE, b"/a", b"x" * 4094)
    assert err.value.code == "E2BIG" and engine.in_flight == 0
    assert engine.request(Op.WRITE, b"/a", b"x" * 4093)[0] == 1  # exactly 4096 bytes


def engine_and_stream() -> tuple[ClientEngine, bytes, list[object]]:
    """An engine with three requests in flight, the bytes answering them with two watch
    events among the replies, and the events those bytes are."""
    engine = ClientEngine()
    engine.request(Op.READ, b"/a")
    engine.request(Op.TRANSACTION_END, b"T", tx=9)
    engine.request(Op.DIRECTORY, b"/")
    messages = [Message(Op.READ, 1, 0, b"value"), watch_event(b"/dev/vif", b"tok"),
                Message(Op.ERROR, 2, 9, b"EAGAIN\x00"), Message(Op.DIRECTORY, 3, 0, b"a\x00b\x00"),
                watch_event(b"/dev", b"t2")]
    expected = [Reply(1, messages[0]), WatchEvent(b"/dev/vif", b"tok"),
                Reply(2, messages[2], "EAGAIN"), Reply(3, messages[3]), WatchEvent(b"/dev", b"t2")]
    return engine, b"".join(m.encode() for m in messages), expected


def test_engine_parses_replies_and_events_split_at_every_byte() -> None:
    engine, stream, expected = engine_and_stream()
    events = [e for i in range(len(stream)) for e in engine.receive(stream[i:i + 1])]
    assert events == expected and engine.in_flight == 0
    for cut in range(len(stream) + 1):
        engine, stream, expected = engine_and_stream()
        assert engine.receive(stream[:cut]) + engine.receive(stream[cut:]) == expected


def test_engine_reads_an_unknown_error_as_einval() -> None:
    engine = ClientEngine()
    engine.request(Op.READ, b"/a")
    (reply,) = engine.receive(Message(Op.ERROR, 1, 0, b"EWHAT\x00").encode())
    assert reply.error == "EINVAL"


@pytest.mark.parametrize("bad", [
    HEADER.pack(Op.READ, 1, 0, 4097),  # a payload over the limit
    Message(Op.READ, 2, 0, b"v").encode(),  # an answer to no request
    Message(Op.WRITE, 1, 0, b"OK\x00").encode(),  # of another type than the request
    Message(Op.WATCH_EVENT, 0, 0, b"/only-a-path\x00").encode(),
])
def test_engine_breaks_on_a_stream_that_is_not_the_protocol(bad: bytes) -> None:
    engine = ClientEngine()
    engine.request(Op.READ, b"/a")
    with pytest.raises(WireError):
        engine.receive(bad)
    assert engine.broken
    with pytest.raises(WireError):
        engine.receive(Message(Op.READ, 1, 0, b"v").encode())
    with pytest.raises(WireError):
        engine.request(Op.READ, b"/a")


# --- flows in memory -----------------------------------------------------------------

class MemoryFlow(Flow):
    """One end of a byte stream in memory: what the other end sends, read at most
    ``chunk`` bytes at a time (1 splits every message at every byte)."""

    def __init__(self, name: str, chunk: int = 65536) -> None:
        self.local = self.peer = (name, 0)  # type: ignore[assignment]
        self.other: MemoryFlow = self
        self.chunk = chunk
        self.closed = False
        self._shut = self._eof = False
        self._in = bytearray()
        self._readable = asyncio.Event()

    @staticmethod
    def pair(chunk: int = 65536) -> tuple[MemoryFlow, MemoryFlow]:
        """(client end, daemon end); the client end reads ``chunk`` bytes at a time."""
        client, server = MemoryFlow("client", chunk), MemoryFlow("daemon")
        client.other, server.other = server, client
        return client, server

    def send(self, data: bytes) -> None:
        """Write without waiting: the memory has no send buffer to fill."""
        if self.closed or self._shut:
            raise BrokenPipeError("this end was closed")
        if not self.other.closed:
            self.other._in += data
            self.other._readable.set()

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._in and not self._eof and not self.closed:
            self._readable.clear()
            await self._readable.wait()
        if self.closed:
            return b""
        data = bytes(self._in[:min(max_bytes, self.chunk)])
        del self._in[:len(data)]
        return data

    async def write(self, data: bytes) -> None:
        self.send(data)

    async def shutdown(self) -> None:
        self._shut = True
        self.other._eof = True
        self.other._readable.set()

    async def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self._readable.set()
            self.other._eof = True
            self.other._readable.set()


class InProcessDaemon:
    """The daemon's sans-IO engine serving connections over ``MemoryFlow``s: each one's
    requests handled as they come, and after each, every connection sent what it is due
    (answers, and watch events fired by another's change)."""

    def __init__(self, chunk: int = 65536) -> None:
        self.daemon = Daemon()
        self.chunk = chunk
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, domid: int = 0) -> Flow:
        """A new connection (dom0's, or as domain ``domid``'s ring would be), whose client
        end reads ``chunk`` bytes at a time."""
        client, server = MemoryFlow.pair(self.chunk)
        session = self.daemon.connect(server, domid=domid)
        task = asyncio.get_running_loop().create_task(self._serve(session, server))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client

    async def _serve(self, session: Session, end: MemoryFlow) -> None:
        try:
            while (data := await end.read()) and not session.closed:
                session.receive(data)
                self.daemon.effects.clear()  # no journal here
                for other in list(self.daemon.sessions):
                    if other.outbox:
                        other.key.send(b"".join(other.outbox))  # type: ignore[attr-defined]
                        other.outbox.clear()
        finally:
            session.close()
            end.abort()


class ScriptedPeer:
    """The daemon's end of a ``MemoryFlow``, played by a test: it takes the client's
    requests one by one and answers what the test says."""

    def __init__(self, end: MemoryFlow) -> None:
        self.end = end
        self._reader = MessageReader()
        self._got: deque[Message] = deque()

    async def request(self) -> Message:
        while not self._got:
            data = await self.end.read()
            assert data, "the client closed the connection"
            self._got.extend(self._reader.feed(data))
        return self._got.popleft()

    def answer(self, request: Message, payload: bytes, op: int | None = None) -> None:
        self.end.send(request.reply(payload, op).encode())

    async def expect(self, op: Op, payload: bytes, answer: bytes, *, tx: int = 0,
                     error: bool = False) -> None:
        """Take one request, check it is ``op`` on ``payload``, and answer it."""
        got = await self.request()
        assert (got.op, got.tx_id, got.payload) == (op, tx, payload)
        self.answer(got, answer, Op.ERROR if error else None)


def scripted() -> tuple[XenstoreClient, ScriptedPeer]:
    client_end, peer_end = MemoryFlow.pair()
    return XenstoreClient(client_end), ScriptedPeer(peer_end)


# --- the adapter against a scripted peer ---------------------------------------------

Call = Callable[[XenstoreClient], Awaitable[object]]
CALLS: list[tuple[str, Call, Op, int, bytes, bytes, object]] = [
    # (name, call, its request type, transaction, payload, the answer, what the call returns)
    ("read", lambda c: c.read("/a", tx=3), Op.READ, 3, b"/a\x00", b"v\x00al", b"v\x00al"),
    ("write", lambda c: c.write(b"/a", "val", tx=3), Op.WRITE, 3, b"/a\x00val", b"OK\x00", None),
    ("write empty", lambda c: c.write("/a", b""), Op.WRITE, 0, b"/a\x00", b"OK\x00", None),
    ("mkdir", lambda c: c.mkdir("/a"), Op.MKDIR, 0, b"/a\x00", b"OK\x00", None),
    ("rm", lambda c: c.rm("/a", tx=2), Op.RM, 2, b"/a\x00", b"OK\x00", None),
    ("directory", lambda c: c.directory("/a"), Op.DIRECTORY, 0, b"/a\x00", b"x\x00y\x00",
     [b"x", b"y"]),
    ("directory empty", lambda c: c.directory("/a"), Op.DIRECTORY, 0, b"/a\x00", b"", []),
    ("get_perms", lambda c: c.get_perms("/a"), Op.GET_PERMS, 0, b"/a\x00", b"n0\x00r1\x00",
     [b"n0", b"r1"]),
    ("set_perms", lambda c: c.set_perms("/a", [b"n0", "r1"]), Op.SET_PERMS, 0,
     b"/a\x00n0\x00r1\x00", b"OK\x00", None),
    ("watch", lambda c: c.watch("/a", "tok"), Op.WATCH, 0, b"/a\x00tok\x00", b"OK\x00", None),
    ("unwatch", lambda c: c.unwatch("/a", "tok"), Op.UNWATCH, 0, b"/a\x00tok\x00", b"OK\x00",
     None),
    ("reset_watches", lambda c: c.reset_watches(), Op.RESET_WATCHES, 0, b"\x00", b"OK\x00",
     None),
    ("transaction_start", lambda c: c.transaction_start(), Op.TRANSACTION_START, 0, b"\x00",
     b"17\x00", 17),
    ("commit", lambda c: c.transaction_end(17), Op.TRANSACTION_END, 17, b"T\x00", b"OK\x00",
     None),
    ("abort", lambda c: c.transaction_end(17, commit=False), Op.TRANSACTION_END, 17, b"F\x00",
     b"OK\x00", None),
    ("get_domain_path", lambda c: c.get_domain_path(3), Op.GET_DOMAIN_PATH, 0, b"3\x00",
     b"/local/domain/3\x00", b"/local/domain/3"),
    ("introduced", lambda c: c.is_domain_introduced(3), Op.IS_DOMAIN_INTRODUCED, 0, b"3\x00",
     b"T\x00", True),
    ("not introduced", lambda c: c.is_domain_introduced(3), Op.IS_DOMAIN_INTRODUCED, 0,
     b"3\x00", b"F\x00", False),
    ("introduce", lambda c: c.introduce(3, 4096, 7), Op.INTRODUCE, 0, b"3\x004096\x007\x00",
     b"OK\x00", None),
    ("release", lambda c: c.release(3), Op.RELEASE, 0, b"3\x00", b"OK\x00", None),
    ("set_target", lambda c: c.set_target(3, 0), Op.SET_TARGET, 0, b"3\x000\x00", b"OK\x00",
     None),
    ("resume", lambda c: c.resume(3), Op.RESUME, 0, b"3\x00", b"OK\x00", None),
    ("get_feature", lambda c: c.get_feature(), Op.GET_FEATURE, 0, b"", b"3\x00", 3),
    ("get_feature of", lambda c: c.get_feature(4), Op.GET_FEATURE, 0, b"4\x00", b"1\x00", 1),
    ("set_feature", lambda c: c.set_feature(4, 1), Op.SET_FEATURE, 0, b"4\x001\x00",
     b"OK\x00", None),
    ("quota_names", lambda c: c.quota_names(), Op.GET_QUOTA, 0, b"", b"nodes watches\x00",
     [b"nodes", b"watches"]),
    ("get_quota", lambda c: c.get_quota("nodes"), Op.GET_QUOTA, 0, b"nodes\x00",
     b"1000\x00", 1000),
    ("get_quota of", lambda c: c.get_quota(b"watches", 4), Op.GET_QUOTA, 0,
     b"4\x00watches\x00", b"0\x00", 0),
    ("set_quota", lambda c: c.set_quota("nodes", 50), Op.SET_QUOTA, 0, b"nodes\x0050\x00",
     b"OK\x00", None),
    ("set_quota of", lambda c: c.set_quota("nodes", 5, 4), Op.SET_QUOTA, 0,
     b"4\x00nodes\x005\x00", b"OK\x00", None),
]


@pytest.mark.parametrize(("call", "op", "tx", "payload", "answer", "result"),
                         [case[1:] for case in CALLS], ids=[case[0] for case in CALLS])
def test_each_call_sends_its_request_and_decodes_its_answer(
        call: Call, op: Op, tx: int, payload: bytes, answer: bytes, result: object) -> None:
    async def scenario() -> None:
        client, peer = scripted()
        pending = asyncio.ensure_future(call(client))
        request = await peer.request()
        assert request == Message(op, 1, tx, payload)
        peer.answer(request, answer)
        assert await pending == result
        await client.close()
    run(scenario())


@pytest.mark.parametrize(("call", "answer"), [
    (lambda c: c.transaction_start(), b"x\x00"),
    (lambda c: c.is_domain_introduced(1), b"yes\x00"),
    (lambda c: c.get_domain_path(1), b""),
])
def test_a_malformed_answer_is_a_wire_error(call: Call, answer: bytes) -> None:
    async def scenario() -> None:
        client, peer = scripted()
        pending = asyncio.ensure_future(call(client))
        peer.answer(await peer.request(), answer)
        with pytest.raises(WireError):
            await pending
        await client.close()
    run(scenario())


def test_an_error_answer_raises_its_code() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        pending = asyncio.ensure_future(client.read("/missing"))
        await peer.expect(Op.READ, b"/missing\x00", b"ENOENT\x00", error=True)
        with pytest.raises(XenstoreError) as err:
            await pending
        assert err.value.code == "ENOENT"
        await client.close()
    run(scenario())


def test_directory_in_parts_restarts_when_the_generation_changes() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        listing = asyncio.ensure_future(client.directory("/big"))
        await peer.expect(Op.DIRECTORY, b"/big\x00", b"E2BIG\x00", error=True)
        await peer.expect(Op.DIRECTORY_PART, b"/big\x000\x00", b"5\x00a\x00b\x00")
        await peer.expect(Op.DIRECTORY_PART, b"/big\x004\x00", b"6\x00c\x00\x00")  # changed
        await peer.expect(Op.DIRECTORY_PART, b"/big\x000\x00", b"6\x00a\x00b\x00")
        await peer.expect(Op.DIRECTORY_PART, b"/big\x004\x00", b"6\x00c\x00\x00")
        assert await listing == [b"a", b"b", b"c"]
        await client.close()
    run(scenario())


def test_directory_of_a_directory_that_keeps_changing_gives_up_with_eagain() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        listing = asyncio.ensure_future(client.directory("/big"))
        await peer.expect(Op.DIRECTORY, b"/big\x00", b"E2BIG\x00", error=True)
        for generation in range(DIRECTORY_ATTEMPTS):
            await peer.expect(Op.DIRECTORY_PART, b"/big\x000\x00", b"%d\x00a\x00" % generation)
            await peer.expect(Op.DIRECTORY_PART, b"/big\x002\x00", b"99\x00b\x00\x00")
        with pytest.raises(XenstoreError) as err:
            await listing
        assert err.value.code == "EAGAIN"
        await client.close()
    run(scenario())


def test_directory_without_directory_part_stays_e2big() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        listing = asyncio.ensure_future(client.directory("/big"))
        await peer.expect(Op.DIRECTORY, b"/big\x00", b"E2BIG\x00", error=True)
        await peer.expect(Op.DIRECTORY_PART, b"/big\x000\x00", b"ENOSYS\x00", error=True)
        with pytest.raises(XenstoreError) as err:
            await listing
        assert err.value.code == "E2BIG"
        await client.close()
    run(scenario())


def test_the_flow_ending_fails_requests_in_flight_and_later_ones() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        pending = asyncio.ensure_future(client.read("/a"))
        await peer.request()
        peer.end.abort()
        with pytest.raises(ConnectionError):
            await pending
        with pytest.raises(ConnectionError):
            await client.read("/a")
        with pytest.raises(ConnectionError):
            await client.next_event()
        assert [e async for e in client.events()] == [] and client.ended
        await client.close()
    run(scenario())


def test_a_broken_stream_ends_the_connection_with_the_wire_error() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        pending = asyncio.ensure_future(client.read("/a"))
        await peer.request()
        peer.end.send(HEADER.pack(Op.READ, 1, 0, 5000))
        with pytest.raises(ConnectionError) as err:
            await pending
        assert isinstance(err.value.__cause__, WireError)
        assert peer.end.other.closed  # the client dropped the connection
        await client.close()
    run(scenario())


def test_close_fails_the_requests_in_flight() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        pending = asyncio.ensure_future(client.read("/a"))
        await peer.request()
        await client.close()
        with pytest.raises(ConnectionError):
            await pending
        assert client.ended
    run(scenario())


def test_a_cancelled_request_leaves_its_late_answer_to_nobody() -> None:
    async def scenario() -> None:
        client, peer = scripted()
        first = asyncio.ensure_future(client.read("/a"))
        request_a = await peer.request()
        first.cancel()
        second = asyncio.ensure_future(client.read("/b"))
        request_b = await peer.request()
        peer.answer(request_a, b"for a")
        peer.answer(request_b, b"for b")
        assert await second == b"for b"
        assert first.cancelled()
        await client.close()
    run(scenario())


# --- the same scenarios against the daemon: in this process, and the appliance --------

Connect = Callable[[], Awaitable[Flow]]


@pytest.fixture(params=["in-process", "in-process-bytewise", "appliance"])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """A way to open a fresh connection to one daemon (the same one for every call): the
    daemon's engine in this process (its answers read whole, or a byte at a time), or
    the running appliance over its Unix socket."""
    if request.param != "appliance":
        yield InProcessDaemon(1 if request.param == "in-process-bytewise" else 65536).connect
        return
    socket = str(request.getfixturevalue("daemon").socket)

    async def over_unix() -> Flow:
        return await UnixLocalSockets(UnixConsole("test")).connect(socket)
    yield over_unix


class RecordingFlow(Flow):
    """A flow that notes the type of every request written through it."""

    def __init__(self, flow: Flow) -> None:
        self.local, self.peer = flow.local, flow.peer
        self.ops: list[int] = []
        self._flow = flow
        self._reader = MessageReader()

    async def read(self, max_bytes: int = 65536) -> bytes:
        return await self._flow.read(max_bytes)

    async def write(self, data: bytes) -> None:
        self.ops += [m.op for m in self._reader.feed(data)]
        await self._flow.write(data)

    async def shutdown(self) -> None:
        await self._flow.shutdown()

    async def close(self) -> None:
        await self._flow.close()

    def abort(self) -> None:
        self._flow.abort()


def test_nodes_permissions_and_errors(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as xs:
            await xs.write("/vm/1/name", "guest one")
            await xs.mkdir("/vm/1/device")
            assert await xs.read("/vm/1/name") == b"guest one"
            assert await xs.read("/vm/1/device") == b""
            assert await xs.directory("/vm/1") == [b"device", b"name"]
            await xs.set_perms("/vm/1/name", ["n0", b"r3"])
            assert await xs.get_perms("/vm/1/name") == [b"n0", b"r3"]
            await xs.rm("/vm/1")
            with pytest.raises(XenstoreError) as err:
                await xs.read("/vm/1/name")
            assert err.value.code == "ENOENT"
            with pytest.raises(XenstoreError) as err:
                await xs.read("relative//bad")
            assert err.value.code == "EINVAL"
    run(scenario())


def test_a_big_directory_comes_through_directory_part(connect: Connect) -> None:
    names = [b"child-%04d" % i for i in range(600)]  # 6600 bytes of names: two parts

    async def scenario() -> None:
        recording = RecordingFlow(await connect())
        async with XenstoreClient(recording) as xs:
            await asyncio.gather(*(xs.write(b"/big/" + name, name) for name in names))
            recording.ops.clear()
            assert await xs.directory("/big") == names
            assert recording.ops == [Op.DIRECTORY, Op.DIRECTORY_PART, Op.DIRECTORY_PART]
    run(scenario())


def test_watches_fire_with_their_token(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as a, XenstoreClient(await connect()) as b:
            await b.mkdir("/dev/vbd")  # made before the watch: no event for it
            await a.watch("/dev", "tok-a")
            assert await a.next_event() == WatchEvent(b"/dev", b"tok-a")  # at registration
            await b.write("/dev/vif", "up")
            assert await a.next_event() == WatchEvent(b"/dev/vif", b"tok-a")
            await a.watch("/dev/vbd", b"tok-b")
            assert await a.next_event() == WatchEvent(b"/dev/vbd", b"tok-b")
            await b.write("/dev/vbd/0", "up")
            both = {await a.next_event(), await a.next_event()}
            assert both == {WatchEvent(b"/dev/vbd/0", b"tok-a"), WatchEvent(b"/dev/vbd/0", b"tok-b")}
            await a.unwatch("/dev", "tok-a")
            await b.write("/dev/vbd/1", "up")
            assert await a.next_event() == WatchEvent(b"/dev/vbd/1", b"tok-b")
            await a.reset_watches()
            await b.write("/dev/vbd/2", "up")
            await a.watch("/sync", "sync")  # the next event: no watch is left to fire
            assert await a.next_event() == WatchEvent(b"/sync", b"sync")
    run(scenario())


def test_a_transaction_conflict_and_the_retry_helper(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as a, XenstoreClient(await connect()) as b:
            await a.write("/counter", "0")
            ta, tb = await a.transaction_start(), await b.transaction_start()
            assert await a.read("/counter", tx=ta) == await b.read("/counter", tx=tb) == b"0"
            await a.write("/counter", "1", tx=ta)
            await b.write("/counter", "2", tx=tb)
            await a.transaction_end(ta)
            with pytest.raises(XenstoreError) as err:
                await b.transaction_end(tb)
            assert err.value.code == "EAGAIN"
            assert await b.read("/counter") == b"1"

            runs: list[bytes] = []

            async def increment(tx: int) -> bytes:
                seen = await b.read("/counter", tx=tx)
                runs.append(seen)
                if len(runs) == 1:  # another client changes it under the first attempt
                    await a.write("/counter", "100")
                await b.write("/counter", b"%d" % (int(seen) + 1), tx=tx)
                return seen
            assert await b.transaction(increment) == b"100"
            assert runs == [b"1", b"100"]
            assert await a.read("/counter") == b"101"
    run(scenario())


def test_the_retry_helper_gives_up_and_aborts_on_other_errors(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as a, XenstoreClient(await connect()) as b:
            await a.write("/n", "0")
            runs = []

            async def always_conflicting(tx: int) -> None:
                runs.append(await b.read("/n", tx=tx))
                await a.write("/n", b"%d" % len(runs))
                await b.write("/n", b"mine", tx=tx)
            with pytest.raises(XenstoreError) as err:
                await b.transaction(always_conflicting, attempts=3)
            assert err.value.code == "EAGAIN" and runs == [b"0", b"1", b"2"]

            async def failing(tx: int) -> None:
                await b.write("/left", "x", tx=tx)
                await b.read("/missing", tx=tx)
            with pytest.raises(XenstoreError) as err:
                await b.transaction(failing)
            assert err.value.code == "ENOENT"
            with pytest.raises(XenstoreError) as err:
                await a.read("/left")  # the transaction ended uncommitted
            assert err.value.code == "ENOENT"
    run(scenario())


def test_concurrent_requests_from_many_tasks(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as xs:
            await xs.mkdir("/many")
            await xs.watch("/many", "w")
            assert await xs.next_event() == WatchEvent(b"/many", b"w")

            async def worker(i: int) -> tuple[bytes, list[bytes]]:
                await xs.write(b"/many/%d" % i, b"v%d" % i)
                return await xs.read(b"/many/%d" % i), await xs.get_perms(b"/many/%d" % i)
            results = await asyncio.gather(*(worker(i) for i in range(200)))
            assert results == [(b"v%d" % i, [b"n0"]) for i in range(200)]
            events = {await xs.next_event() for _ in range(200)}
            assert events == {WatchEvent(b"/many/%d" % i, b"w") for i in range(200)}
    run(scenario())


def test_domains_introduced_released_and_their_watches(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as xs:
            await xs.watch("@introduceDomain", "in")
            await xs.watch("@releaseDomain", "out")
            assert {await xs.next_event(), await xs.next_event()} == {
                WatchEvent(b"@introduceDomain", b"in"), WatchEvent(b"@releaseDomain", b"out")}
            assert await xs.get_domain_path(7) == b"/local/domain/7"
            assert not await xs.is_domain_introduced(7)
            await xs.introduce(7, 4096, 3)
            assert await xs.next_event() == WatchEvent(b"@introduceDomain", b"in")
            assert await xs.is_domain_introduced(7)
            await xs.set_target(7, 0)
            await xs.resume(7)
            await xs.release(7)
            assert await xs.next_event() == WatchEvent(b"@releaseDomain", b"out")
            assert not await xs.is_domain_introduced(7)
            with pytest.raises(XenstoreError) as err:
                await xs.release(7)
            assert err.value.code == "ENOENT"
    run(scenario())


def test_features_and_quotas(connect: Connect) -> None:
    async def scenario() -> None:
        async with XenstoreClient(await connect()) as xs:
            assert await xs.get_feature() == 3  # reconnection and error reporting
            await xs.set_feature(9, 1)
            assert await xs.get_feature(9) == 1
            names = await xs.quota_names()
            assert {b"nodes", b"watches", b"transactions"} <= set(names)
            await xs.set_quota("nodes", 3, 9)
            assert await xs.get_quota("nodes", 9) == 3
            assert await xs.get_quota("nodes") != 3  # the global default is untouched
            with pytest.raises(XenstoreError) as err:
                await xs.get_quota("no-such-quota")
            assert err.value.code == "EINVAL"
    run(scenario())


def test_the_appliance_killed_fails_the_requests(daemon) -> None:  # noqa: F811
    async def scenario() -> None:
        flow = await UnixLocalSockets(UnixConsole("test")).connect(str(daemon.socket))
        async with XenstoreClient(flow) as xs:
            await xs.write("/a", "1")
            daemon.proc.kill()
            daemon.proc.wait(10)
            with pytest.raises(ConnectionError):
                await xs.read("/a")
            assert xs.ended
    run(scenario())
