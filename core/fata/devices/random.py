"""Random device: cryptographically secure bytes (ISNs, TLS, DNS IDs)."""

from __future__ import annotations

import abc


class Random(abc.ABC):
    """A source of secure random bytes."""

    @abc.abstractmethod
    def bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes."""

    def uint32(self) -> int:
        """A random 32-bit unsigned integer."""
        return int.from_bytes(self.bytes(4), "big")
