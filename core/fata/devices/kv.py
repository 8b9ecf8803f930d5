"""Read-only key/value store: the appliance's data, baked into the image at build time."""

from __future__ import annotations

import abc


class KeyNotFound(KeyError):
    """The key is not in the store."""


class KV(abc.ABC):
    """A read-only store of named blobs (Mirage's ``Mirage_kv.RO``).

    Keys are ``/``-separated paths such as ``zones/example.zone``.  A store baked into the
    image (``kv_ro``) never changes while the appliance runs, which is what lets appliances
    precompute answers; a run-time store (``kv_runtime``) is read anew on each ``get``, so an
    appliance re-reads it when it chooses to (on a reload).
    """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the value; raises ``KeyNotFound``."""

    @abc.abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix``, sorted."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` is present."""
        try:
            self.get(key)
        except KeyNotFound:
            return False
        return True
