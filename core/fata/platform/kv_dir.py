"""A read-only KV store over a directory: the data baked into an image."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from fata.devices import KV, KeyNotFound
from fata.platform.registry import DeviceContext


def sealed_reader(root: Path) -> Callable[[str], bytes] | None:
    """How to read files under ``root`` through the image's seal, when this process runs a
    sealed image (``fata.image.sealboot``'s finder is on ``sys.meta_path``) and ``root`` is
    inside its extraction: a function from a key under ``root`` to its bytes, checked
    against the signed manifest as they are read (``SealBroken`` if they differ)."""
    for finder in sys.meta_path:
        read, base = getattr(finder, "read", None), getattr(finder, "root", None)
        if not callable(read) or not isinstance(base, str):
            continue
        try:
            rel = root.relative_to(Path(base).resolve())
        except ValueError:
            continue
        prefix = f"{base}/{rel.as_posix()}/" if rel.parts else f"{base}/"
        return lambda key: read(prefix + key)
    return None


class DirectoryKV(KV):
    """Keys are paths relative to ``root``; values are file contents, cached once read.

    The directory is part of a sealed image and cannot change while the appliance runs, so
    each file is read at most once; in a sealed run it is read through the seal, so a file
    changed in the extraction during the run is refused, not served.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._read = sealed_reader(self.root)
        self._cache: dict[str, bytes] = {}
        self._keys = sorted(
            str(p.relative_to(self.root)).replace(os.sep, "/")
            for p in self.root.rglob("*")
            if p.is_file()
        ) if self.root.is_dir() else []
        self._keyset = frozenset(self._keys)

    def get(self, key: str) -> bytes:
        """The file's bytes; ``KeyNotFound`` for anything not under the root."""
        value = self._cache.get(key)
        if value is not None:
            return value
        if key not in self._keyset:
            raise KeyNotFound(key)
        value = self._read(key) if self._read is not None else (self.root / key).read_bytes()
        self._cache[key] = value
        return value

    def keys(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix``."""
        return [k for k in self._keys if k.startswith(prefix)]


async def open_kv_ro(name: str, spec: dict, ctx: DeviceContext) -> KV:
    """The directory baked into the image under ``data/``."""
    return DirectoryKV(ctx.root / "data" / spec["directory"])
