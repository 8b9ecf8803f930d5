"""Byte budgets and admission for the server's memo and reply cache (issue 12).

A flood of distinct names must not grow the appliance's memory without bound, nor evict
the answers precomputed at load.  Two pieces, used for both caches of :mod:`fata_dns.server`:

* :class:`Doorkeeper`: once a budget is half used (``Budget.gate``; below it every entry is
  welcome, as a cold cache should fill), a key is admitted only when it is seen a second
  time within a window of recent first sightings.  A flood of once-seen names passes
  through without entering either cache.  It is a table of one byte per slot indexed by
  the key's hash (1 MiB, made when first needed), reset after ``DOOR_WINDOW`` first
  sightings, so that at most 1/8 of the slots are set and at most 1/8 of once-seen keys
  are admitted by a collision.
* :class:`Budget`: accounts the entries of a plain dict in bytes (key and value lengths
  plus a per-entry overhead estimate for the Python objects and the dict slot) in two
  regions.  *Pinned* entries (the answers precomputed at load, the zone's own names) are
  kept while the catalog is served, up to ``pinned_max`` bytes.  The others are
  *transient*: when adding one would pass the budget, the transient entries are all
  removed (in place: the dict may be the platform's reply cache) and the new one enters.
  Clearing the transient region rather than refusing new entries keeps the cache useful
  for names that become popular later; the doorkeeper makes each clear cost an attacker
  two queries per name, and the pinned region does not move.
"""

from __future__ import annotations

from typing import Any

DOOR_SLOTS = 1 << 20
DOOR_WINDOW = DOOR_SLOTS >> 3


class Doorkeeper:
    """Admits a key on its second sighting (a collision admits one early: ≤ 1/8)."""

    __slots__ = ("_firsts", "_mask", "_size", "_slots", "_window")

    def __init__(self, slots: int = DOOR_SLOTS, window: int = DOOR_WINDOW) -> None:
        self._size = slots
        self._slots: bytearray | None = None  # made on first use: a small zone never needs it
        self._mask = slots - 1
        self._window = window
        self._firsts = 0

    def admit(self, key: Any) -> bool:
        """True if ``key`` was seen before in this window, else remember it (False)."""
        i = hash(key) & self._mask
        slots = self._slots
        if slots is None:
            slots = self._slots = bytearray(self._size)
        if slots[i]:
            return True
        if self._firsts >= self._window:
            slots[:] = bytes(len(slots))  # in place, no second table
            self._firsts = 0
        slots[i] = 1
        self._firsts += 1
        return False


class Budget:
    """Byte accounting for the plain dict ``entries`` (changed in place, never rebound).

    ``overhead`` is the estimate of a entry's cost beyond its keys' and values' lengths,
    documented where each budget is made (:mod:`fata_dns.server`).
    """

    __slots__ = ("entries", "gate", "max_bytes", "overhead", "pinned_bytes", "pinned_max",
                 "transient", "transient_bytes")

    def __init__(self, entries: dict, max_bytes: int, overhead: int,
                 pinned_max: int | None = None) -> None:
        self.entries = entries
        self.max_bytes = max(0, int(max_bytes))
        self.gate = self.max_bytes // 2
        """Below this many bytes used, the server admits entries without the doorkeeper."""
        self.overhead = overhead
        self.pinned_max = self.max_bytes if pinned_max is None else min(pinned_max,
                                                                         self.max_bytes)
        self.pinned_bytes = 0
        self.transient_bytes = 0
        self.transient: list = []  # keys of the transient region, to remove them

    @property
    def used(self) -> int:
        """Accounted bytes of all entries."""
        return self.pinned_bytes + self.transient_bytes

    def reset(self) -> None:
        """Forget every entry (a new catalog)."""
        self.entries.clear()
        self.transient = []
        self.pinned_bytes = self.transient_bytes = 0

    def add(self, key: Any, value: Any, size: int, pinned: bool = False) -> bool:
        """Store ``key`` -> ``value`` (``size`` payload bytes) if the budget allows.  A
        pinned entry needs room in the pinned region (``pinned_max``) and beside the
        transient entries; it is never stored as transient.  False if not stored."""
        entries = self.entries
        if key in entries:
            return True
        cost = size + self.overhead
        if pinned:
            if self.pinned_bytes + cost > self.pinned_max:
                return False
            if self.used + cost > self.max_bytes:
                self.clear_transient()
            entries[key] = value
            self.pinned_bytes += cost
            return True
        if self.pinned_bytes + cost > self.max_bytes:
            return False  # would not fit even alone beside the pinned region
        if self.used + cost > self.max_bytes:
            self.clear_transient()
        entries[key] = value
        self.transient.append(key)
        self.transient_bytes += cost
        return True

    def clear_transient(self) -> None:
        """Remove the transient entries, in place; the pinned ones stay."""
        entries = self.entries
        if self.pinned_bytes == 0:
            entries.clear()
        else:
            for key in self.transient:
                entries.pop(key, None)
        self.transient = []
        self.transient_bytes = 0
