"""Clock device: the only place time comes from, so engines can be driven by tests."""

from __future__ import annotations

import abc


class Clock(abc.ABC):
    """Monotonic and wall-clock time."""

    @abc.abstractmethod
    def monotonic(self) -> float:
        """Seconds on a monotonic clock (for timeouts and rates)."""

    @abc.abstractmethod
    def time(self) -> float:
        """Seconds since the Unix epoch (for dates on the wire)."""
