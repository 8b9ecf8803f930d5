"""Grant tables: Xen's rules for who may map and end which grant (the engine), and the
hypervisor process sharing a frontend's granted pages with its backend alone, read-only
enforced by the kernel, through real connections of real domains."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import mmap
import os
import resource
import select
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fata.platform import xen_hypervisor
from fata.platform.xen_host import HypervisorClient
from fata.platform.xen_hypervisor import HypervisorServer
from fata.xen.hypervisor import (
    DOMID_SELF,
    FIRST_GREF,
    MAX_GRANTS,
    MAX_MAPPED,
    PAGE_SIZE,
    Hypervisor,
    HypervisorError,
)

ROOT = Path(__file__).resolve().parents[2]


def code(call: Callable[[], object]) -> str:
    with pytest.raises(HypervisorError) as info:
        call()
    return info.value.code


def domains(hv: Hypervisor, *names: str) -> list[int]:
    return [hv.create_domain(0, name, 4).domid for name in names]


# -- the rules -------------------------------------------------------------------------------


def test_a_grant_is_mapped_only_by_the_domain_it_is_for() -> None:
    hv = Hypervisor()
    front, back, other = domains(hv, "front", "back", "other")
    allocation = hv.grant_alloc(front, back, 2, readonly=False)
    assert allocation.grefs == (FIRST_GREF, FIRST_GREF + 1) == (8, 9)
    assert code(lambda: hv.grant_map(other, front, [8], writable=False)) == "EPERM"
    assert code(lambda: hv.grant_map(0, front, [8], writable=False)) == "EPERM"  # no privilege
    mapping = hv.grant_map(back, front, [9, 8], writable=True)
    assert (mapping.granter, mapping.grefs, mapping.pages) == (front, (9, 8), (1, 0))
    assert [hv.grant(front, g).mapped for g in (8, 9)] == [1, 1]
    assert hv.domains[back].mapped == 2
    # The granter maps what it granted itself only if it granted it to itself.
    assert code(lambda: hv.grant_map(front, DOMID_SELF, [8], writable=False)) == "EPERM"
    own = hv.grant_alloc(front, DOMID_SELF, 1, readonly=False)
    assert hv.grant_map(front, DOMID_SELF, list(own.grefs), writable=True).granter == front


def test_a_read_only_grant_is_never_mapped_writable() -> None:
    hv = Hypervisor()
    front, back = domains(hv, "front", "back")
    gref = hv.grant_alloc(front, back, 1, readonly=True).grefs[0]
    assert code(lambda: hv.grant_map(back, front, [gref], writable=True)) == "EPERM"
    assert hv.grant(front, gref).mapped == 0
    assert not hv.grant_map(back, front, [gref], writable=False).writable
    assert hv.grant(front, gref).mapped == 1


def test_unknown_grefs_and_domains_and_mixed_requests_are_refused() -> None:
    hv = Hypervisor()
    front, back = domains(hv, "front", "back")
    first = hv.grant_alloc(front, back, 2, readonly=False)
    second = hv.grant_alloc(front, back, 1, readonly=False)
    assert second.grefs == (10,)
    for grefs in ([0], [7], [11], [-1], [10**30], [], [8, 8], list(range(8, 8 + MAX_GRANTS + 1))):
        assert code(lambda g=grefs: hv.grant_map(back, front, g, writable=False)) == "EINVAL"
    assert code(lambda: hv.grant_map(back, front, [8, 10], writable=False)) == "EINVAL"
    assert code(lambda: hv.grant_map(back, 99, [8], writable=False)) == "ESRCH"
    assert code(lambda: hv.grant_alloc(front, 99, 1, readonly=False)) == "ESRCH"
    assert code(lambda: hv.grant_unmap(back, 1)) == "EINVAL"
    assert code(lambda: hv.grant_end(back, 8)) == "EINVAL"  # not back's grant to end
    assert code(lambda: hv.grant_release(back, first.id)) == "EINVAL"
    assert all(hv.grant(front, g).mapped == 0 for g in (8, 9, 10))  # nothing half-mapped


def test_a_grant_ends_only_once_unmapped_and_its_allocation_then_goes() -> None:
    hv = Hypervisor()
    front, back = domains(hv, "front", "back")
    allocation = hv.grant_alloc(front, back, 2, readonly=False)
    first = hv.grant_map(back, front, [8], writable=True)
    second = hv.grant_map(back, front, [8, 9], writable=False)
    assert code(lambda: hv.grant_end(front, 8)) == "EBUSY"
    hv.grant_unmap(back, first.handle)
    assert code(lambda: hv.grant_end(front, 8)) == "EBUSY"  # still in the second map
    assert code(lambda: hv.grant_end(front, 9)) == "EBUSY"
    assert hv.grant_unmap(back, second.handle) is second
    assert code(lambda: hv.grant_unmap(back, second.handle)) == "EINVAL"
    hv.grant_end(front, 8)
    assert code(lambda: hv.grant_map(back, front, [8], writable=False)) == "EINVAL"
    assert allocation.id in hv.allocations and hv.released_allocations == []
    hv.grant_end(front, 9)
    assert allocation.id not in hv.allocations
    assert hv.released_allocations == [allocation.id]
    assert hv.domains[back].mapped == 0 and hv.domains[front].grants == {}
    again = hv.grant_alloc(front, back, 1, readonly=False)  # ended grefs are reused
    assert again.grefs == (8,) and again.id != allocation.id
    third = hv.grant_map(back, front, [8], writable=True)
    assert third.handle == 3  # a handle names one map for the life of its domain


def test_grants_and_maps_per_domain_are_bounded() -> None:
    hv = Hypervisor()
    front, back = domains(hv, "front", "back")
    for count in (0, -1, MAX_GRANTS + 1):
        assert code(lambda n=count: hv.grant_alloc(front, back, n, readonly=False)) == "EINVAL"
    hv.grant_alloc(front, back, MAX_GRANTS - 1, readonly=False)
    assert code(lambda: hv.grant_alloc(front, back, 2, readonly=False)) == "ENOSPC"
    last = hv.grant_alloc(front, back, 1, readonly=False)
    assert last.grefs == (FIRST_GREF + MAX_GRANTS - 1,)
    assert code(lambda: hv.grant_alloc(front, back, 1, readonly=False)) == "ENOSPC"
    whole = list(range(FIRST_GREF, FIRST_GREF + MAX_GRANTS - 1))
    for _ in range(MAX_MAPPED // len(whole)):
        hv.grant_map(back, front, whole, writable=True)
    room = MAX_MAPPED - hv.domains[back].mapped
    assert code(lambda: hv.grant_map(back, front, whole[:room + 1], writable=True)) == "ENOSPC"
    hv.grant_map(back, front, whole[:room], writable=True)
    assert hv.domains[back].mapped == MAX_MAPPED
    assert code(lambda: hv.grant_map(back, front, list(last.grefs), writable=True)) == "ENOSPC"


def test_destroying_either_domain_drops_its_grants_and_maps() -> None:
    hv = Hypervisor()
    front, back, other = domains(hv, "front", "back", "other")
    shared = hv.grant_alloc(front, back, 1, readonly=False)
    hv.grant_map(back, front, [8], writable=True)
    hv.destroy_domain(0, back)  # the backend's maps count down on the frontend's grant
    assert hv.grant(front, 8).mapped == 0
    hv.grant_end(front, 8)
    assert hv.released_allocations == [shared.id]

    kept = hv.grant_alloc(front, other, 2, readonly=False)
    mapping = hv.grant_map(other, front, [8, 9], writable=True)
    unmapped = hv.grant_alloc(front, other, 1, readonly=True)
    hv.destroy_domain(0, front)  # mapped or not, the frontend's allocations go with it
    assert hv.released_allocations == [shared.id, kept.id, unmapped.id]
    assert hv.allocations == {}
    assert hv.domains[other].mapped == 2  # the backend still has what it mapped ...
    assert hv.grant_unmap(other, mapping.handle) is mapping  # ... until it unmaps it
    assert hv.domains[other].mapped == 0
    assert code(lambda: hv.grant_map(other, front, [8], writable=True)) == "ESRCH"


def test_a_released_allocation_ends_as_its_maps_go() -> None:
    hv = Hypervisor()
    front, back = domains(hv, "front", "back")
    allocation = hv.grant_alloc(front, back, 3, readonly=False)
    mapping = hv.grant_map(back, front, [9], writable=True)
    hv.grant_release(front, allocation.id)  # the process holding it went away
    assert sorted(hv.domains[front].grants) == [9]  # only the mapped one is left ...
    assert code(lambda: hv.grant_map(back, front, [9], writable=True)) == "EINVAL"
    assert hv.released_allocations == []
    hv.grant_unmap(back, mapping.handle)  # ... until its last map goes
    assert hv.domains[front].grants == {} and hv.released_allocations == [allocation.id]


# -- the process -----------------------------------------------------------------------------


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 5) -> None:
    """Wait until ``condition`` holds: the hypervisor runs on this loop, so it gets its turn
    each time we yield."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def refusal(call: Awaitable[Any]) -> str:
    with pytest.raises(HypervisorError) as info:
        await call
    return info.value.code


@asynccontextmanager
async def platform(tmp_path: Path, *names: str
                   ) -> AsyncIterator[tuple[HypervisorServer, dict[str, HypervisorClient]]]:
    """A hypervisor on this loop, domain 0's connection (``"dom0"``) and a guest domain's
    connection per name; nothing may escape the hypervisor's callbacks as an exception."""
    escaped: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: escaped.append(context))
    server = HypervisorServer()
    await server.listen(str(tmp_path / "socket"))
    clients = {"dom0": await HypervisorClient.connect(str(tmp_path / "socket"))}
    try:
        for name in names:
            _, handle = await clients["dom0"].create_domain(name, pages=4)
            clients[name] = await HypervisorClient.from_fd(handle.detach())
        yield server, clients
    finally:
        for client in clients.values():
            await client.close()
        server.close()
    assert escaped == []


def test_a_backend_reads_and_writes_exactly_what_its_frontend_granted(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "front", "back") as (server, doms):
            front, back = doms["front"], doms["back"]
            shared = await front.grant_alloc(back.domid, 2)
            assert shared.grefs == (8, 9) and (shared.remote, shared.readonly) == (2, False)
            shared.page(1)[:8] = b"request!"
            shared.page(0)[PAGE_SIZE - 4:] = b"tail"
            mapping = await back.grant_map(front.domid, [9, 8])
            assert mapping.page(9)[:9] == b"request!\0"
            assert [bytes(p[PAGE_SIZE - 4:]) for p in mapping.pages()] == [b"\0" * 4, b"tail"]
            assert len(mapping.page(8)) == PAGE_SIZE
            mapping.page(8)[:8] = b"response"
            assert shared.page(0)[:8] == b"response"  # the same memory, both ways

            assert await refusal(front.grant_end(8)) == "EBUSY"
            view = mapping.page(8)
            with pytest.raises(BufferError):  # a view alive: nothing is unmapped
                await back.grant_unmap(mapping)
            assert await refusal(front.grant_end(8)) == "EBUSY"
            view.release()
            await back.grant_unmap(mapping)
            await front.grant_end(8)
            allocation = next(iter(server.grant_memory))
            await front.grant_end(9)
            assert allocation not in server.grant_memory  # the hypervisor let go of it
            assert await refusal(back.grant_map(front.domid, [9])) == "EINVAL"
            assert shared.page(0)[:8] == b"response"  # still mapped where it was made
            shared.close()

    run(main())


def test_a_read_only_grant_cannot_be_made_writable_by_its_backend(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "front", "back") as (_, doms):
            front, back = doms["front"], doms["back"]
            shared = await front.grant_alloc(back.domid, 1, readonly=True)
            gref = shared.grefs[0]
            shared.page(0)[:5] = b"hello"
            assert await refusal(back.grant_map(front.domid, [gref], writable=True)) == "EPERM"
            mapping = await back.grant_map(front.domid, [gref], writable=False)
            assert mapping.page(gref)[:5] == b"hello"
            with pytest.raises(TypeError):
                mapping.page(gref)[:5] = b"HELLO"

            # What the backend was given, tried every way the kernel offers:
            answer, fds = await back.call("grant_map", domid=front.domid, grefs=[gref],
                                          writable=False)
            (fd,) = fds
            try:
                assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
                with pytest.raises(PermissionError):
                    mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                with pytest.raises(OSError):
                    os.write(fd, b"x")
                again = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)  # the memfd's mode allows it
                try:
                    with pytest.raises(PermissionError):  # but it is sealed against writers
                        mmap.mmap(again, PAGE_SIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
                    with pytest.raises(PermissionError):
                        os.pwrite(again, b"HELLO", 0)
                finally:
                    os.close(again)
                reader = mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
            finally:
                os.close(fd)
            shared.page(0)[:5] = b"world"  # the granter's own mapping still writes
            assert reader[:5] == b"world" and mapping.page(gref)[:5] == b"world"
            reader.close()
            await back.call("grant_unmap", handle=answer["handle"])
            await back.grant_unmap(mapping)
            await front.grant_end(gref)

    run(main())


def test_no_domain_maps_ends_or_unmaps_what_is_not_its_own(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "front", "back", "other") as (_, doms):
            front, back, other, dom0 = doms["front"], doms["back"], doms["other"], doms["dom0"]
            shared = await front.grant_alloc(back.domid, 1)
            gref = shared.grefs[0]
            assert await refusal(other.grant_map(front.domid, [gref])) == "EPERM"
            assert await refusal(dom0.grant_map(front.domid, [gref], writable=False)) == "EPERM"
            mapping = await back.grant_map(front.domid, [gref])
            assert await refusal(other.call("grant_end", gref=gref)) == "EINVAL"
            assert await refusal(other.call("grant_unmap", handle=mapping.handle)) == "EINVAL"
            assert await refusal(back.call("grant_end", gref=gref)) == "EINVAL"

            # Two processes of domain 0 are two holders: neither touches the other's.
            tools = await HypervisorClient.connect(str(tmp_path / "socket"))
            try:
                mine = await dom0.grant_alloc(back.domid, 1)
                assert await refusal(tools.call("grant_end", gref=mine.grefs[0])) == "EINVAL"
                offered = await back.grant_alloc(0, 1)
                taken = await dom0.grant_map(back.domid, list(offered.grefs))
                assert await refusal(tools.call("grant_unmap", handle=taken.handle)) == "EINVAL"
                await dom0.grant_unmap(taken)
                await back.grant_end(offered.grefs[0])
                await dom0.grant_end(mine.grefs[0])
            finally:
                await tools.close()
            await back.grant_unmap(mapping)
            await front.grant_end(gref)

    run(main())


def test_a_connection_or_domain_gone_drops_its_maps_and_grants(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "front", "back", "spare") as (server, doms):
            front, back, dom0 = doms["front"], doms["back"], doms["dom0"]
            hv = server.hv
            first = await front.grant_alloc(back.domid, 1)
            first.page(0)[:4] = b"kept"
            await back.grant_map(front.domid, list(first.grefs))
            assert hv.grant(front.domid, 8).mapped == 1
            await back.close()  # the backend's process is gone, its map with it
            await eventually(lambda: hv.grant(front.domid, 8).mapped == 0, "the backend's map")
            await front.grant_end(8)
            assert server.grant_memory == {}

            spare = doms["spare"]
            second = await front.grant_alloc(spare.domid, 2)
            second.page(1)[:4] = b"dead"
            held = await spare.grant_map(front.domid, [second.grefs[1]])
            await dom0.destroy_domain(front.domid)  # the frontend's grants go with it
            assert server.grant_memory == {}
            assert held.page(second.grefs[1])[:4] == b"dead"  # what was mapped stays mapped
            await spare.grant_unmap(held)
            assert hv.domains[spare.domid].mapped == 0

    run(main())


def test_a_frontend_process_gone_ends_its_grants_once_unmapped(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "back") as (server, doms):
            back, hv = doms["back"], server.hv
            tools = await HypervisorClient.connect(str(tmp_path / "socket"))
            shared = await tools.grant_alloc(back.domid, 2)
            mapping = await back.grant_map(0, [shared.grefs[0]])
            await tools.close()
            await eventually(lambda: list(hv.domains[0].grants) == [8], "the ended grants")
            assert await refusal(back.grant_map(0, [8])) == "EINVAL"
            assert len(server.grant_memory) == 1
            await back.grant_unmap(mapping)
            assert hv.domains[0].grants == {} and server.grant_memory == {}

    run(main())


def test_a_read_only_grant_that_cannot_be_sealed_is_not_mapped(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "front", "back") as (server, doms):
            front, back = doms["front"], doms["back"]
            answer, (fd,) = await front.call("grant_alloc", remote=back.domid, count=1,
                                             readonly=True)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL)  # no seal can follow
            os.close(fd)
            (gref,) = answer["grefs"]
            assert await refusal(back.grant_map(front.domid, [gref], writable=False)) == "EPERM"
            assert server.hv.grant(front.domid, gref).mapped == 0  # nothing left mapped
            assert server.hv.domains[back.domid].maps == {}
            await front.grant_end(gref)

    run(main())


def test_an_allocation_the_process_cannot_back_is_refused_and_undone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_descriptors(allocation: object) -> int:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    async def main() -> None:
        async with platform(tmp_path, "front", "back") as (server, doms):
            front, back = doms["front"], doms["back"]
            with monkeypatch.context() as patch:
                patch.setattr(xen_hypervisor, "_grant_memfd", out_of_descriptors)
                assert await refusal(front.grant_alloc(back.domid, 3)) == "EMFILE"
            assert server.hv.domains[front.domid].grants == {}
            assert server.hv.allocations == {} and server.grant_memory == {}
            assert (await front.grant_alloc(back.domid, 1)).grefs == (8,)

    run(main())


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"op": "grant_map", "domid": 1, "grefs": [-1]}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [-1], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [2**64], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [0], "writable": False}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": ["8"], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [8.0], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [True], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [[8]], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": {"8": 8}, "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": "8", "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": list(range(8, 5008)), "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": "1", "grefs": [8], "writable": True}, "EINVAL"),
    ({"op": "grant_map", "domid": -5, "grefs": [8], "writable": True}, "ESRCH"),
    ({"op": "grant_map", "domid": 1, "grefs": [8], "writable": "yes"}, "EINVAL"),
    ({"op": "grant_map", "domid": 1, "grefs": [8], "writable": 1}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 0, "count": -1, "readonly": False}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 0, "count": 10**9, "readonly": False}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 0, "count": 1.5, "readonly": False}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 0, "count": "1", "readonly": False}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 0, "count": True, "readonly": False}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 0, "count": 1, "readonly": None}, "EINVAL"),
    ({"op": "grant_alloc", "remote": 2**70, "count": 1, "readonly": False}, "ESRCH"),
    ({"op": "grant_alloc", "remote": None, "count": 1, "readonly": False}, "EINVAL"),
    ({"op": "grant_end", "gref": 8}, "EINVAL"),
    ({"op": "grant_end", "gref": -(2**63)}, "EINVAL"),
    ({"op": "grant_end"}, "EINVAL"),
    ({"op": "grant_unmap", "handle": 1}, "EINVAL"),
    ({"op": "grant_unmap", "handle": [1]}, "EINVAL"),
    ({"op": "grant_nonsense"}, "ENOSYS"),
]
GARBAGE: list[bytes] = [
    b"[" * 100_000,  # longer than a request: cut short, so not JSON
    b"[" * 60_000,  # nested deeper than the decoder recurses
    b'{"op": "grant_end", "gref": ' + b"9" * 5000 + b"}",  # more digits than an int parses
    b'{"op": "grant_map", "domid": 1, "grefs": [NaN], "writable": true}',
    b"\xff\xfe not json",
    b'["grant_end"]',
]


def test_hostile_grant_requests_are_refused_and_the_hypervisor_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with platform(tmp_path, "front") as (server, doms):
            front, dom0 = doms["front"], doms["dom0"]
            shared = await front.grant_alloc(0, 1)  # gref 8 of domain 1, for domain 0
            loop = asyncio.get_running_loop()
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            raw.setblocking(False)
            await loop.sock_connect(raw, str(tmp_path / "socket"))
            try:
                answers = []
                for request in [*(json.dumps(r).encode() for r, _ in HOSTILE), *GARBAGE]:
                    await loop.sock_sendall(raw, request)
                    answers.append(json.loads(await loop.sock_recv(raw, 65536)))
            finally:
                raw.close()
            assert [a.get("error") for a in answers] == [
                *(expected for _, expected in HOSTILE), *["EINVAL"] * len(GARBAGE)]
            assert server.hv.grant(front.domid, 8).mapped == 0 and server.hv.domains[0].maps == {}
            mapping = await dom0.grant_map(front.domid, [8])  # still serving, still exact
            shared.page(0)[:2] = b"ok"
            assert mapping.page(8)[:2] == b"ok"
            await dom0.grant_unmap(mapping)

    run(main())


def test_the_process_raises_its_descriptor_limit_to_the_hard_limit(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(hard, 64)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    proc = subprocess.Popen(
        [sys.executable, "-m", "fata.platform.xen_hypervisor", "--socket",
         str(tmp_path / "socket")], stdout=subprocess.PIPE, text=True, preexec_fn=lower,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "core")))
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and "listening" in proc.stdout.readline()  # printed once it is up
        limits = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
        (line,) = [entry for entry in limits if entry.startswith("Max open files")]
        soft = Path("/proc/sys/fs/nr_open").read_text().strip() \
            if hard == resource.RLIM_INFINITY else str(hard)
        assert line.split()[3] == soft and int(soft) > low
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
