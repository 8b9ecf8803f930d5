"""When to probe a quiet controller and when to give it up: Open vSwitch's inactivity
probe, sans-IO.  TCP alone notices a controller that closes its connection, not one whose
host vanished; so after ``interval`` seconds without a message from the controller the
switch sends ECHO_REQUEST, and after another ``interval`` still without one it drops the
connection (then reconnects, and fail-secure or fail-standalone applies meanwhile).
Any message from the controller counts as a sign of life.  Time is the caller's ``now``.
"""

from __future__ import annotations

from enum import Enum


class Due(Enum):
    PROBE = "probe"  # send an ECHO_REQUEST
    DEAD = "dead"  # the controller did not answer: drop the connection


class Liveness:
    """One connection's probe state; ``interval`` 0 never probes."""

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self._heard = now
        self._probed: float | None = None

    def heard(self, now: float) -> None:
        """A message came from the controller."""
        self._heard, self._probed = now, None

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` has something to say (None: never)."""
        if not self.interval:
            return None
        return (self._heard if self._probed is None else self._probed) + self.interval

    def on_timer(self, now: float) -> Due | None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        if self._probed is None:
            self._probed = now
            return Due.PROBE
        return Due.DEAD
