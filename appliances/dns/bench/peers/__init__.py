"""One launcher per DNS server under test, all with the same shape (:class:`base.Server`).

Each launcher writes its server's configuration into a fresh directory and returns the
foreground command that serves the benchmark zone on ``127.0.0.1:PORT`` with one worker,
with query logging, rate limiting and everything else that would skew the numbers off; for
the spoofed-flood run (:class:`base.FloodSetup`) with a second zone and rate limiting on.
"""

from __future__ import annotations

from .base import Launch, Server
from .bind import Bind
from .fata import Fata
from .knot import Knot
from .nsd import Nsd

PEERS: dict[str, type[Server]] = {"bind": Bind, "nsd": Nsd, "knot": Knot}
"""The competitors, by the name ``--against`` uses."""

__all__ = ["PEERS", "Bind", "Fata", "Knot", "Launch", "Nsd", "Server"]
