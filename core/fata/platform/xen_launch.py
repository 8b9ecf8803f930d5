"""``fata run IMAGE`` for an image built with ``--target xen``: the toolstack's whole job.

It joins the Xen platform whose sockets are in ``--xen-dir`` (default
``/run/fata/xen``), or starts it there: the hypervisor process, the xenstore_stub appliance
serving rings, a netback and a blkback, each a privileged process of domain 0, stopped again when
this command ends.  Then it builds a guest domain with one vif, gives the vif's TAP on the
host the address ``10.77.<domid>.1/24`` (the guest's is ``.2``, unless ``--ipv4`` says
otherwise), and starts the image, sealed as every run is, as that guest:

- in a network namespace of its own with nothing in it but a loopback that is down, and a
  mount namespace where ``/dev/net`` is an empty directory: its only way out is its rings;
- as user and group ``nobody`` with no supplementary groups, so no capabilities, and
  ``no_new_privs``;
- under a seccomp filter that refuses ``socket()`` for every family but ``AF_UNIX``
  (``EACCES``): the event loop's own socket pair stays possible, a network socket does not.

A ``--block NAME=PATH[:ro]`` becomes the guest's vbd, served by the platform's blkback from
``PATH``; the guest sees only its ring.

The guest's log comes through its PV console page (``fata.platform.xen_console``), read
here as ``xenconsoled`` would and written to this command's stderr; its own stderr goes to
``logs/domain-<domid>.stderr`` in the platform's directory.  When the guest exits its domain
is destroyed (the backend sees its device go and lets the
TAP go).  ``fata ps`` lists the running domains from xenstore.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from contextlib import suppress
from pathlib import Path

from fata.platform import PlatformError
from fata.platform.local_unix import UnixLocalSockets
from fata.platform.unix import UnixConsole
from fata.platform.xen_console import CONSOLE_ENV, ConsoleDaemon
from fata.platform.xen_host import DOMAIN_FD_ENV, HypervisorClient
from fata.platform.xen_toolstack import (
    CONSOLE_PFN,
    add_vbd,
    add_vif,
    build_guest,
    destroy_guest,
    domains,
)
from fata.xen.hypervisor import HVM_PARAM_CONSOLE_EVTCHN
from fata.xen.xs_client import XenstoreClient
from fata.xen.xs_wire import XenstoreError

DEFAULT_DIR = Path("/run/fata/xen")
GUEST_CACHE = Path("/var/cache/fata-guests")  # extracted images a guest user can read
NOBODY = 65534
START_TIMEOUT = 60.0

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x4000, 1 << 18, 2, 4, 8
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 4, 38, 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
NR_SOCKET = 41
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL = 0x7FFF0000, 0x00050000, 0
AF_UNIX = 1


def socket_filter() -> bytes:
    """The classic BPF program: on x86-64, ``socket(family, ...)`` with a family other than
    ``AF_UNIX`` returns ``EACCES``; everything else is allowed; another ABI is killed."""
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET

    def op(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)
    return b"".join([
        op(ld, 0, 0, 4),  # seccomp_data.arch
        op(jeq, 1, 0, AUDIT_ARCH_X86_64),
        op(ret, 0, 0, SECCOMP_RET_KILL),
        op(ld, 0, 0, 0),  # seccomp_data.nr
        op(jeq, 0, 3, NR_SOCKET),
        op(ld, 0, 0, 16),  # seccomp_data.args[0], its low 32 bits
        op(jeq, 1, 0, AF_UNIX),
        op(ret, 0, 0, SECCOMP_RET_ERRNO | errno.EACCES),
        op(ret, 0, 0, SECCOMP_RET_ALLOW),
    ])


def confine() -> None:
    """Run in the guest's child between fork and exec (``preexec_fn``): see the module's
    docstring.  Any failure aborts the start: a guest is never run less confined."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"confining the guest: {what} failed")
    check(libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    if os.path.isdir("/dev/net"):
        check(libc.mount(b"tmpfs", b"/dev/net", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                         b"size=4k,mode=755"), "hiding /dev/net")
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "PR_SET_DUMPABLE")  # /proc/self/fd/N
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    program = socket_filter()
    filters = ctypes.create_string_buffer(program)
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(filters))
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0),
          "installing the seccomp filter")


class Platform:
    """The platform's sockets, and the processes this command started (if it did)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.hypervisor = directory / "hypervisor"
        self.xenstore = directory / "xenstored"
        self.started: list[subprocess.Popen] = []
        self.netback: subprocess.Popen | None = None  # when this command started it
        self.default_addresses = False  # the vif's host side is ours to configure

    def running(self) -> bool:
        return all(_answers(p, kind) for p, kind in (
            (self.hypervisor, socket.SOCK_SEQPACKET), (self.xenstore, socket.SOCK_STREAM)))

    def start(self, console: UnixConsole) -> None:
        from fata.cli import REPO_ROOT

        xenstored = REPO_ROOT / "appliances" / "xenstore_stub"
        if not xenstored.is_dir():
            raise PlatformError(f"the Xen platform needs the xenstore_stub appliance "
                                f"(looked in {xenstored})")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        py = sys.executable
        self._spawn(logs / "hypervisor.log", [py, "-m", "fata.platform.xen_hypervisor",
                                              "--socket", str(self.hypervisor)])
        self._wait(lambda: _answers(self.hypervisor, socket.SOCK_SEQPACKET), "the hypervisor",
                   logs / "hypervisor.log")
        self._spawn(logs / "xenstored.log", [
            py, "-m", "fata", "run", str(xenstored), "--xen-hypervisor", str(self.hypervisor),
            "--", "--socket", str(self.xenstore), "--store", str(self.dir / "store")])
        self._wait(lambda: _answers(self.xenstore, socket.SOCK_STREAM), "xenstored",
                   logs / "xenstored.log")
        self.netback = self.start_backend("netback")
        self.start_backend("blkback")
        console.info(f"xen platform started in {self.dir} (logs in {logs})")

    def start_backend(self, name: str) -> subprocess.Popen:
        """(Re)start backend ``name`` (``netback``, ``blkback``): ``fata.platform.xen_NAME``,
        its log appended to, so a restart keeps the story; returned once it serves."""
        log = self.dir / "logs" / f"{name}.log"
        mark = log.stat().st_size if log.exists() else 0
        self.started = [proc for proc in self.started if proc.poll() is None]  # a dead one
        proc = subprocess.Popen(
            [sys.executable, "-m", f"fata.platform.xen_{name}", "--xen-hypervisor",
             str(self.hypervisor), "--xenstore", str(self.xenstore)],
            stdout=log.open("a"), stderr=subprocess.STDOUT)
        self.started.append(proc)
        self._wait(lambda: f"{name} serving" in log.read_text()[mark:], name, log)
        return proc

    def _spawn(self, log: Path, argv: list[str]) -> None:
        self.started.append(subprocess.Popen(argv, stdout=log.open("w"),
                                             stderr=subprocess.STDOUT))

    def _wait(self, ready, what: str, log: Path) -> None:
        import time

        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if any(p.poll() is not None for p in self.started) or time.monotonic() > deadline:
                self.stop()
                raise PlatformError(f"{what} did not start: {log.read_text()[-2000:]}")
            with suppress(subprocess.TimeoutExpired):
                self.started[-1].wait(0.05)  # wakes early only if it exits

    def stop(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.started.clear()


def _answers(path: Path, kind: int) -> bool:
    with socket.socket(socket.AF_UNIX, kind) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _has_ipv4(argv: list[str]) -> bool:
    return any(a == "--ipv4" or a.startswith("--ipv4=") for a in argv)


async def _run(image: Path, argv: list[str], trust: list[Path], platform: Platform) -> int:
    from fata.image import run as image_run
    from fata.platform.tap import configure_host

    console = UnixConsole("fata-xen")
    xen = await HypervisorClient.connect(str(platform.hypervisor))
    flow = await UnixLocalSockets(console).connect(str(platform.xenstore))
    async with XenstoreClient(flow) as xs:
        await xs.write("/local/domain/0/name", "Domain-0")
        guest = await build_guest(xen, xs, f"{image.stem}-{os.getpid()}")
        try:
            vif = await add_vif(xs, guest.domid, 0)
            platform_argv, sep, app_argv = _split(argv)
            platform_argv = await _disks(xs, guest.domid, platform_argv, console)
            extra = ["--netif", "stack=xen:0"]
            platform.default_addresses = not _has_ipv4(platform_argv)
            if platform.default_addresses:
                net = f"10.77.{guest.domid % 250}"
                extra += ["--ipv4", f"{net}.2/24"]
                tap = await _vifname(xs, vif.backend)
                await asyncio.to_thread(configure_host, tap, f"{net}.1/24", 1500)
                console.info(f"domain {guest.domid} ({guest.name}): answers on {net}.2 via "
                             f"{tap}, host side {net}.1/24")
            os.environ["XDG_CACHE_HOME"] = str(GUEST_CACHE)
            GUEST_CACHE.mkdir(parents=True, exist_ok=True, mode=0o755)
            launch = image_run.prepare(image, [*platform_argv, *extra, *sep, *app_argv], trust)
            console_port = await xen.get_param(HVM_PARAM_CONSOLE_EVTCHN, guest.domid)
            daemon = await ConsoleDaemon.open(xen, guest.domid, CONSOLE_PFN, console_port,
                                              sys.stderr)
            fd = guest.handle.detach()
            env = dict(launch.env, **{DOMAIN_FD_ENV: str(fd), CONSOLE_ENV: "1"})
            # its log comes through the console page; what bypasses it (a crash of the
            # interpreter itself) lands here
            stderr = (platform.dir / "logs" / f"domain-{guest.domid}.stderr").open("w")
            try:
                child = subprocess.Popen(launch.argv, executable=launch.executable, env=env,
                                         pass_fds=(*launch.pass_fds, fd), preexec_fn=confine,
                                         stderr=stderr)
            finally:
                launch.close()
                os.close(fd)
                stderr.close()
            console.info(f"domain {guest.domid}: process {child.pid}, user nobody, no network "
                         "of its own")
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # the guest's to act on
                loop.add_signal_handler(sig, child.send_signal, sig)
            watch = loop.create_task(_supervise(platform, xs, guest.domid, console))
            watch.add_done_callback(lambda t: t.cancelled() or t.exception() is None or
                                    console.error(f"supervising the platform failed: "
                                                  f"{t.exception()!r}"))
            try:
                code = await asyncio.to_thread(child.wait)
            finally:
                watch.cancel()
                daemon.stop()
        finally:
            await destroy_guest(xen, xs, guest.domid)
    await xen.close()
    return code


async def _supervise(platform: Platform, xs: XenstoreClient, domid: int,
                     console: UnixConsole) -> None:
    """A driver domain that dies is restarted, as a toolstack does: its device directories
    go (the guest's netfront sees its backend gone and closes), are made again, and a new
    netback serves them (the guest connects to it; the TAP's host side is set again)."""
    from fata.platform.tap import configure_host

    while platform.netback is not None:
        code = await _exited(platform.netback)
        console.error(f"netback exited ({code}); restarting it for domain {domid}")
        await xs.rm(f"/local/domain/0/backend/vif/{domid}")
        vif = await add_vif(xs, domid, 0)
        host = await asyncio.to_thread(_host_side, platform, domid)
        platform.netback = await asyncio.to_thread(platform.start_backend, "netback")
        tap = await _vifname(xs, vif.backend)
        if host is not None:
            await asyncio.to_thread(configure_host, tap, host, 1500)
        console.info(f"domain {domid}: vif 0 served again, by a new netback on {tap}")


def _exited(proc: subprocess.Popen) -> asyncio.Future[int]:
    """A process's exit status as a future, waited for on a daemon thread of its own (not
    the loop's executor, which ``asyncio.run`` waits for at its end)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def wait() -> None:
        code = proc.wait()
        with suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(code))
    threading.Thread(target=wait, daemon=True).start()
    return done


def _host_side(platform: Platform, domid: int) -> str | None:
    return f"10.77.{domid % 250}.1/24" if platform.default_addresses else None


async def _disks(xs: XenstoreClient, domid: int, argv: list[str],
                 console: UnixConsole) -> list[str]:
    """Each ``--block NAME=PATH[:ro]`` becomes the guest's vbd, served by blkback from
    ``PATH`` (which the guest never sees), and the option ``--block NAME=xen:N[:ro]``."""
    out: list[str] = []
    values = iter(argv)
    devid = 0
    for item in values:
        if item != "--block" and not item.startswith("--block="):
            out.append(item)
            continue
        value = item.partition("=")[2] if "=" in item else next(values, "")
        name, _, where = value.partition("=")
        readonly = where.endswith(":ro")
        path = where[:-3] if readonly else where
        if not name or not path or path.startswith("xen:"):
            raise PlatformError(f"--block {value!r}: give NAME=PATH[:ro], the disk's file")
        if not os.path.isfile(path):
            raise PlatformError(f"--block {value!r}: {path} is not a file")
        await add_vbd(xs, domid, devid, os.path.abspath(path), readonly=readonly)
        console.info(f"domain {domid}: vbd {devid} ({name}) is {path}"
                     f"{' (read-only)' if readonly else ''}")
        out += ["--block", f"{name}=xen:{devid}{':ro' if readonly else ''}"]
        devid += 1
    return out


def _split(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], ["--"], argv[at + 1:]
    return argv, [], []


async def _vifname(xs: XenstoreClient, backend: str) -> str:
    """The vif's TAP, once netback has made it and said so in ``vifname``."""
    async with asyncio.timeout(START_TIMEOUT):
        async with await xs.subscribe(f"{backend}/vifname") as sub:
            while True:
                with suppress(XenstoreError):
                    return (await xs.read(f"{backend}/vifname")).decode()
                await sub.next()


def run_guest(image: Path, argv: list[str], trust: list[Path],
              directory: Path = DEFAULT_DIR) -> int:
    """``fata run`` of a xen image: the exit status of the guest."""
    if os.geteuid() != 0:
        raise PlatformError("--target xen images run as root: the platform's backends own "
                            "the devices and the guest is confined to user nobody")
    platform = Platform(directory)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # before the guest runs: clean up on the way out
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if not platform.running():
            platform.start(UnixConsole("fata-xen"))
        return asyncio.run(_run(image, argv, trust, platform))
    finally:
        platform.stop()
        signal.signal(signal.SIGTERM, previous)


def list_domains(directory: Path = DEFAULT_DIR) -> list[tuple[int, str]]:
    """``fata ps``: the domains of the platform in ``directory``."""
    platform = Platform(directory)
    if not _answers(platform.xenstore, socket.SOCK_STREAM):
        raise PlatformError(f"no Xen platform is running in {directory}")

    async def ask() -> list[tuple[int, str]]:
        flow = await UnixLocalSockets(UnixConsole("fata-ps")).connect(str(platform.xenstore))
        async with XenstoreClient(flow) as xs:
            return await domains(xs)
    return asyncio.run(ask())
