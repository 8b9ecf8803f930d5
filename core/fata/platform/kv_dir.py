"""A read-only KV store over a directory: the data baked into an image."""

from __future__ import annotations

import os
from pathlib import Path

from fata.devices import KV, KeyNotFound
from fata.platform.registry import DeviceContext


class DirectoryKV(KV):
    """Keys are paths relative to ``root``; values are file contents, cached once read.

    The directory is part of a sealed image and cannot change while the appliance runs, so
    each file is read at most once.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
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
        value = (self.root / key).read_bytes()
        self._cache[key] = value
        return value

    def keys(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix``."""
        return [k for k in self._keys if k.startswith(prefix)]


async def open_kv_ro(name: str, spec: dict, ctx: DeviceContext) -> KV:
    """The directory baked into the image under ``data/``."""
    return DirectoryKV(ctx.root / "data" / spec["directory"])
