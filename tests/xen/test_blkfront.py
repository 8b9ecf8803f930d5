"""The Xen platform's block path end to end, as processes: a hypervisor, the xenstore
daemon appliance serving rings, a blkback serving files, a toolstack (this test) building
guest domains and their vbds, and a guest process (``blk_guest.py``) opening its vbds
as ``--block NAME=xen:DEVID``.  The guest's writes land in the host file byte for byte; a
read-only vbd refuses writes in the backend as well as in the frontend; a backend killed
mid-stream (the toolstack removing its directory) fails the guest's waiting and later
operations instead of hanging them, and a new backend serves the same guest again with
every acknowledged write intact.  With this process as the guest: many operations in
flight, larger than the pool of granted pages; a frontend opened ``:ro``.  ``measure``
compares blkfront's throughput with direct file I/O (``block_file``) in one run
(``pytest -m slow -s -k throughput`` prints it)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import blk_guest as guest_program  # the guest's plan, for the model of its disk
import pytest
from appliance_util import ROOT, LoggedProcess, wait_until
from fata.bench.xen import throughput
from fata.devices.block import BlockError, BlockInfo
from fata.platform import PlatformError
from fata.platform.block_file import FileBlock
from fata.platform.local_unix import UnixLocalSockets
from fata.platform.unix import UnixConsole
from fata.platform.xen_blkfront import Blkfront, open_blkfront
from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient, xenstore_ring
from fata.platform.xen_toolstack import add_vbd, build_guest, destroy_guest
from fata.xen.xenbus import XenbusState, read_state
from fata.xen.xs_client import XenstoreClient
from xen_util import Process, python

GUEST = Path(__file__).resolve().with_name("blk_guest.py")

TIMEOUT = 60.0



class XenProcesses:
    """A hypervisor process, the xenstore daemon appliance on it and a blkback on both,
    stopped in reverse order; the toolstack connects with :meth:`toolstack`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.hv_socket = tmp / "hv" / "socket"
        self.xs_socket = tmp / "xs" / "socket"
        self.started: list[LoggedProcess] = []
        self.blkback: Process | None = None
        self._backends = 0

    def __enter__(self) -> XenProcesses:
        try:
            self.started.append(Process(self.tmp, "hypervisor", [
                python(), "-m", "fata.platform.xen_hypervisor", "--socket",
                str(self.hv_socket)], "listening"))
            self.xs_socket.parent.mkdir()
            self.started.append(Process(self.tmp, "xenstored", [
                python(), "-m", "fata", "run", str(ROOT / "appliances" / "xenstore_stub"),
                "--xen-hypervisor", str(self.hv_socket), "--", "--socket",
                str(self.xs_socket), "--store", str(self.tmp / "store")], "serving"))
            self.start_blkback()
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_blkback(self, *args: str) -> Process:
        self._backends += 1
        self.blkback = Process(self.tmp, f"blkback{self._backends}", [
            python(), "-m", "fata.platform.xen_blkback", "--xen-hypervisor",
            str(self.hv_socket), "--xenstore", str(self.xs_socket), *args], "blkback serving")
        self.started.append(self.blkback)
        return self.blkback

    def __exit__(self, *exc_info: object) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()

    @contextlib.asynccontextmanager
    async def toolstack(self) -> AsyncIterator[tuple[HypervisorClient, XenstoreClient]]:
        xen = await HypervisorClient.connect(str(self.hv_socket))
        try:
            flow = await UnixLocalSockets(UnixConsole("toolstack")).connect(str(self.xs_socket))
            async with XenstoreClient(flow) as xs:
                yield xen, xs
        finally:
            await xen.close()


@contextlib.asynccontextmanager
async def guest_vbd(processes: XenProcesses, path: Path, *, read_only: bool = False,
                    front_read_only: bool = False, **options: int) -> AsyncIterator[Blkfront]:
    """A new guest domain with ``path`` as its vbd 0 (``read_only``: the toolstack's mode
    ``r``), this process playing the guest: its own hypervisor connection and xenstore ring,
    blkfront over them (``front_read_only``: the guest's own ``:ro``)."""
    async with processes.toolstack() as (xen, xs):
        guest = await build_guest(xen, xs, "blkguest")
        try:
            await add_vbd(xs, guest.domid, 0, str(path), readonly=read_only)
            own = await HypervisorClient.from_fd(guest.handle.detach())
            try:
                ring = XenstoreClient(await xenstore_ring(own))
                async with ring:
                    block = await open_blkfront(0, own, ring, read_only=front_read_only,
                                                timeout=20, **options)
                    try:
                        yield block
                    finally:
                        await block.close()
            finally:
                await own.close()
        finally:
            await destroy_guest(xen, xs, guest.domid)


@pytest.fixture()
def processes(tmp_path: Path):
    """Processes of this test alone (it kills some of them)."""
    with XenProcesses(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """Processes the tests that leave them running share, each with guests of its own."""
    with XenProcesses(tmp_path_factory.mktemp("xen")) as running:
        yield running


def start_guest(processes: XenProcesses, handle, name: str, mode: str) -> Process:
    """The guest program on the domain's hypervisor connection, stopped with the others
    (so a failing test leaves no guest behind)."""
    fd = handle.detach()
    try:
        guest = Process(processes.tmp, name, [python(), str(GUEST), mode], "{",
                        pass_fds=(fd,), extra_env={DOMAIN_FD_ENV: str(fd)})
    finally:
        os.close(fd)
    processes.started.append(guest)
    return guest


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 240))


def until(condition: Callable[[], bool], what: str, proc: LoggedProcess,
          timeout: float = TIMEOUT) -> Awaitable[None]:
    return asyncio.to_thread(wait_until, condition, timeout, what, proc.output)


async def state_becomes(xs: XenstoreClient, directory: str, state: XenbusState,
                        timeout: float = 30) -> None:
    """Until the side at ``directory`` has published ``state`` (a watch, no polling)."""
    async def watch() -> None:
        async with await xs.subscribe(f"{directory}/state") as sub:
            while await read_state(xs, directory) != state:
                await sub.next()
    await asyncio.wait_for(watch(), timeout)


# --- a guest process -------------------------------------------------------------------

def test_a_guest_process_writes_the_host_file_through_blkfront(shared, tmp_path) -> None:
    processes, tmp = shared, tmp_path
    disk, seed = tmp / "disk.img", tmp / "seed.img"
    original = os.urandom(guest_program.SECTORS * 512)
    disk.write_bytes(original)
    seed.write_bytes(b"seed" * 4096)

    async def toolstack() -> None:
        async with processes.toolstack() as (xen, xs):
            guest = await build_guest(xen, xs, "blkguest")
            vbd = await add_vbd(xs, guest.domid, 0, str(disk))
            await add_vbd(xs, guest.domid, 1, str(seed), readonly=True)
            proc = await asyncio.to_thread(start_guest, processes, guest.handle, "guest",
                                           "script")
            await until(lambda: proc.step("done") is not None
                        or proc.proc.poll() is not None, "the guest's script", proc)
            assert await read_state(xs, vbd.backend) in (XenbusState.CLOSING,
                                                         XenbusState.CLOSED)
            assert proc.proc.wait(10) == 0, proc.output()
            await destroy_guest(xen, xs, guest.domid)
        steps = proc.lines()
        assert steps[0] == {"step": "info", "sector_size": 512,
                            "sectors": guest_program.SECTORS, "read_only": False,
                            "seed_read_only": True}
        assert [s["same"] for s in steps if s["step"] in ("write", "concurrent")] == [True] * 5
        assert proc.step("discard") == {"step": "discard", "zeros": True}
        model = bytearray(original)
        for sector, data in guest_program.plan():
            model[sector * 512:sector * 512 + len(data)] = data
        sector, count = guest_program.DISCARD
        model[sector * 512:(sector + count) * 512] = bytes(count * 512)
        assert disk.read_bytes() == model  # exactly what the guest wrote, nothing else
        assert proc.step("digest")["sha256"] == hashlib.sha256(model).hexdigest()
        assert proc.step("seed-write") == {"step": "seed-write", "refused": True, "errno": 30}
        assert seed.read_bytes() == b"seed" * 4096
        assert proc.step("seed")["sha256"] == hashlib.sha256(b"seed" * 4096).hexdigest()
    run(toolstack)


def test_a_backend_killed_mid_stream_fails_the_guest_and_a_new_one_serves_it(
        processes) -> None:
    tmp = processes.tmp
    disk = tmp / "disk.img"
    disk.write_bytes(bytes(guest_program.STREAM_SLOTS * 65536))

    async def toolstack() -> None:
        async with processes.toolstack() as (xen, xs):
            guest = await build_guest(xen, xs, "streamer")
            vbd = await add_vbd(xs, guest.domid, 0, str(disk))
            proc = await asyncio.to_thread(start_guest, processes, guest.handle, "guest",
                                           "stream")

            def progressed() -> bool:
                return any(s.get("step") == "progress" and s["n"] >= 100 for s in proc.lines())
            await until(progressed, "the guest streaming", proc)
            assert processes.blkback is not None
            processes.blkback.proc.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
            processes.blkback.proc.wait(10)
            await xs.rm(vbd.backend)  # the toolstack notices the backend is gone
            await until(lambda: proc.step("after-error") is not None, "the guest's error",
                        proc, timeout=30)
            error, after = proc.step("error"), proc.step("after-error")
            assert error["errno"] == 6 and "went away" in error["message"]  # ENXIO
            assert after["failed"] and after["errno"] == 6 and after["seconds"] < 1
            await state_becomes(xs, vbd.frontend, XenbusState.CLOSED)
            # a new backend for the same disk: the guest connects again by itself
            await asyncio.to_thread(processes.start_blkback)
            await add_vbd(xs, guest.domid, 0, str(disk))
            await until(lambda: proc.step("done") is not None, "the guest reconnected", proc)
            intact = proc.step("intact")
            assert intact["slots"] == intact["acknowledged"] >= 60
            assert proc.proc.wait(10) == 0, proc.output()
            await destroy_guest(xen, xs, guest.domid)
    run(toolstack)


# --- this process as the guest -----------------------------------------------------------

def test_a_read_only_vbd_refuses_writes_in_the_backend_too(shared, tmp_path) -> None:
    processes, path = shared, tmp_path / "ro.img"
    path.write_bytes(bytes(range(256)) * 64)

    async def main() -> None:
        async with guest_vbd(processes, path, read_only=True) as block:
            assert block.info == BlockInfo(512, 32, True)
            with pytest.raises(BlockError, match="read-only"):
                await block.write(0, bytes(512))  # refused here, before the ring
            # a frontend that ignores the disk's mode: the backend refuses it
            block.info = BlockInfo(512, 32, False)
            with pytest.raises(BlockError, match="failed a write") as refused:
                await block.write(0, bytes(512))
            assert refused.value.errno == 5
            with pytest.raises(BlockError, match="failed a write"):
                await block.discard(0, 8)  # no feature-discard here: zeros, refused too
            assert await block.read(0, 2) == bytes(range(256)) * 4
    run(main)
    assert path.read_bytes() == bytes(range(256)) * 64


def test_many_operations_in_flight_and_larger_than_the_pool(shared, tmp_path) -> None:
    processes, path = shared, tmp_path / "big.img"
    path.write_bytes(bytes(64 << 20))
    rng_data = [hashlib.shake_256(bytes([i])).digest((i % 7 + 1) * 96 * 1024)
                for i in range(48)]

    async def main() -> None:
        async with guest_vbd(processes, path, pool_pages=64) as block:
            starts = [i * 2048 for i in range(len(rng_data))]  # 1 MiB apart
            await asyncio.gather(*(block.write(s, d) for s, d in zip(starts, rng_data,
                                                                      strict=True)))
            big = hashlib.shake_256(b"big").digest(8 << 20)  # 8 MiB: 32 x the pool
            await block.write(len(rng_data) * 2048, big)
            await block.flush()
            backs = await asyncio.gather(*(block.read(s, len(d) // 512)
                                           for s, d in zip(starts, rng_data, strict=True)))
            assert backs == rng_data
            assert await block.read(len(rng_data) * 2048, len(big) // 512) == big
    run(main)
    content = path.read_bytes()
    for i, data in enumerate(rng_data):
        assert content[i << 20:(i << 20) + len(data)] == data


def test_a_frontend_asked_for_read_only_refuses_writes_to_a_writable_disk(shared,
                                                                         tmp_path) -> None:
    path = tmp_path / "rw.img"
    path.write_bytes(bytes(4096))

    async def main() -> None:
        async with guest_vbd(shared, path, front_read_only=True) as block:
            assert block.info == BlockInfo(512, 8, True)
            with pytest.raises(BlockError, match="read-only"):
                await block.write(0, b"x" * 512)
            with pytest.raises(BlockError, match="read-only"):
                await block.discard(0, 1)
            await block.flush()  # nothing to make durable, and no error
    run(main)
    assert path.read_bytes() == bytes(4096)


def test_the_block_option_names_a_vbd_and_needs_a_guest(monkeypatch) -> None:
    async def main() -> None:
        with pytest.raises(PlatformError, match="a vbd is a number"):
            await guest_program.opened("disk", "xen:first")
        monkeypatch.delenv(DOMAIN_FD_ENV, raising=False)
        with pytest.raises(PlatformError, match="only in a guest domain"):
            await guest_program.opened("disk", "xen:0:ro")
    asyncio.run(main())


# --- throughput ------------------------------------------------------------------------

async def measure(processes: XenProcesses, size: int = 256 << 20,
                  depths: tuple[int, ...] = (1, 8), rounds: int = 3
                  ) -> dict[str, dict[str, float]]:
    """Blkfront (this process the guest, a blkback process the backend) and direct file
    I/O (``FileBlock``) on the same file, 64 KiB requests, at each queue depth; rounds
    alternate between the two and the best of each is kept (the page cache warm), so a
    busy machine slows both alike rather than one of them."""
    path = processes.tmp / "bench.img"
    with path.open("wb") as f:
        f.truncate(size)
    best: dict[str, dict[str, float]] = {}

    def keep(name: str, figures: dict[str, float]) -> None:
        for kind, value in figures.items():
            best.setdefault(name, {})[kind] = max(best.get(name, {}).get(kind, 0.0), value)
    direct = FileBlock.open(str(path))
    try:
        async with guest_vbd(processes, path) as block:
            await throughput(direct, size, 8)  # the page cache warm for both
            for _ in range(rounds):
                for depth in depths:
                    keep(f"file qd{depth}", await throughput(direct, size, depth))
                    keep(f"blkfront qd{depth}", await throughput(block, size, depth))
    finally:
        await direct.close()
    return best


@pytest.mark.slow
def test_blkfront_throughput_against_direct_file_io(shared, capsys) -> None:
    processes = shared
    results: dict[str, dict[str, float]] = {}

    async def main() -> None:
        results.update(await measure(processes, 64 << 20, rounds=5))
    run(main)
    with capsys.disabled():
        for name, figures in results.items():
            print(f"\n{name:>14}: write {figures['write']:7.0f} MB/s  "
                  f"read {figures['read']:7.0f} MB/s", end="")
        print()
    for depth in (1, 8):
        for kind in ("write", "read"):  # the target is 0.5 (measured 0.55 to 0.7 on a
            # shared two-core machine): this floor catches a collapse (a hypercall per
            # request, a lost notification waited out), not the noise of a busy machine
            assert (results[f"blkfront qd{depth}"][kind]
                    >= 0.3 * results[f"file qd{depth}"][kind]), results

