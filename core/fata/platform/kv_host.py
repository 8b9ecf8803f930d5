"""``kv_runtime()`` on ``unix``: a read-only KV whose contents ``fata run`` chooses.

MirageOS's ``generic_kv_ro`` in its ``direct`` form: the data is not in the image but in a
host directory named when the image is run,

- ``fata run IMAGE --kv NAME=DIR``: run-time store ``NAME`` is directory ``DIR``; nothing
  outside ``DIR`` can be read through it;
- no ``--kv NAME=...``: ``NAME`` is the host's file system as ``fata run`` sees it (root
  ``/``, relative keys from the working directory), which is what an appliance reading host
  paths given on its command line had before it used a device.

Keys are ``/``-separated paths: relative ones from the store's working directory (its root
when ``--kv`` names a directory), absolute ones from its root.  A key resolves the way the
kernel resolves a path (symlinks, then ``..``), and whatever it resolves to must be a regular
file under the root, else the key is absent (``KeyNotFound``): ``..`` past the root, a
symlink out of it, a directory, a FIFO or a device are never read.  The opened file is
checked again through ``/proc/self/fd``, so a directory swapped for a symlink between the
check and the open is refused too.

Nothing is cached: run-time data may change on the host while the appliance runs, and the
appliance decides when to read it again (the DNS appliance on ``SIGHUP``).
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
from contextlib import suppress

from fata.devices import KV, KeyNotFound
from fata.platform import PlatformError
from fata.platform.registry import DeviceContext

KIND = "kv_runtime"
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--kv NAME=DIR``, repeatable."""
    parser.add_argument(
        "--kv", action="append", default=[], metavar="NAME=DIR",
        help="the host directory holding run-time data store NAME (nothing outside it can be "
             "read); without it, NAME is the host's file system; repeatable")


def kv_choices(options: argparse.Namespace, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The directory given for each run-time store; ``PlatformError`` for a malformed
    ``--kv``, a store named twice, or a name that is none of ``names``."""
    out: dict[str, str] = {}
    for text in getattr(options, "kv", None) or []:
        name, sep, directory = text.partition("=")
        if not sep or not name or not directory:
            raise PlatformError(f"--kv {text!r}: expected NAME=DIR")
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise PlatformError(f"--kv {text!r}: this appliance has no run-time data store "
                                f"{name!r} (it has: {known})")
        if name in out:
            raise PlatformError(f"--kv: store {name!r} is given twice")
        out[name] = directory
    return out


async def open_kv_runtime(name: str, spec: dict, ctx: DeviceContext) -> KV:
    """The directory ``--kv NAME=DIR`` names, else the host's file system."""
    store = spec.get("name", name)
    names = [s.get("name", n) for n, s in ctx.specs.items() if s.get("kind") == KIND] or [store]
    directory = kv_choices(ctx.options, names).get(store)
    if directory is None:
        return HostKV("/", os.getcwd())
    if not os.path.isdir(directory):
        raise PlatformError(f"--kv {store}={directory}: not a directory")
    return HostKV(directory)


class HostKV(KV):
    """Regular files under a host directory ``root``; relative keys resolve from ``cwd``
    (``root`` unless given, and inside it)."""

    def __init__(self, root: str | os.PathLike, cwd: str | os.PathLike | None = None) -> None:
        self.root = os.path.realpath(root)
        self.cwd = self.root if cwd is None else os.path.realpath(os.path.join(self.root, cwd))
        if self.cwd != self.root and not self._within(self.cwd):
            raise ValueError(f"working directory {cwd} is not under {root}")

    def _within(self, path: str) -> bool:
        return self.root == os.sep or path.startswith(self.root + os.sep)

    def path(self, key: str) -> str:
        """The real host path of ``key``, checked to be under the root (``KeyNotFound``
        otherwise); the file itself may not exist."""
        if not isinstance(key, str) or not key or "\x00" in key:
            raise KeyNotFound(key)
        start = self.root if key.startswith("/") else self.cwd
        resolved = os.path.realpath(os.path.join(start, key.lstrip("/")))
        if not self._within(resolved):
            raise KeyNotFound(key)
        return resolved

    def get(self, key: str) -> bytes:
        """The file's bytes, read now; ``KeyNotFound`` for anything that is not a regular
        file under the root.  Other host errors (``EACCES``, ``EIO``) are ``OSError``."""
        path = self.path(key)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the last component became a symlink meanwhile
                raise KeyNotFound(key) from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or not self._opened_within(fd):
                raise KeyNotFound(key)
            os.set_blocking(fd, True)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _opened_within(self, fd: int) -> bool:
        """Whether the file opened really is under the root (Linux's ``/proc``; where it is
        missing the resolved path checked before the open stands)."""
        if self.root == os.sep:
            return True
        try:
            return self._within(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return True

    def keys(self, prefix: str = "") -> list[str]:
        """Sorted keys of the regular files starting with ``prefix`` (relative to the working
        directory, or to the root for a prefix starting with ``/``), read now.  The listing
        does not descend into symlinked directories."""
        absolute = prefix.startswith("/")
        base = self.root if absolute else self.cwd
        rel = prefix.lstrip("/")
        if rel.split("/")[0] == ".." or "/../" in f"/{rel}/":
            return []
        top = os.path.join(base, rel.rpartition("/")[0])
        lead = "/" if absolute else ""
        out = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for filename in filenames:
                full = os.path.join(dirpath, filename)
                key = lead + os.path.relpath(full, base).replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                with suppress(OSError, KeyNotFound):
                    if stat.S_ISREG(os.stat(self.path(key)).st_mode):
                        out.append(key)
        return sorted(out)
