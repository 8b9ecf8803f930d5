"""Flow tables (specification 1.3.5, 5.2-5.5 and 6.4): entries, lookup, FLOW_MOD's five
commands, timeouts, and the selection that flow-stats, aggregate-stats and deletes share.

An entry keeps its match and instructions exactly as the controller sent them (stats echo
them), beside a compiled form for the data path: the match as ``(field, value, mask)``
integers and the instructions in the order 5.9 executes them.  Time is only ever ``now``,
passed in; nothing here reads a clock.  Each table has an exact-match cache in front of it,
keyed by the packet's whole field tuple and the metadata, so a packet seen before costs one
dictionary lookup; any change to the table (add, modify, delete, expiry) empties it.

What a FLOW_MOD means is decided here; what its instructions and actions may refer to
(ports, groups, meters) is the switch's, which checks them before calling
:meth:`FlowTables.flow_mod`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from . import actions as A
from . import instructions as I
from .messages import FlowMod, FlowRemoved
from .multipart import FlowStats
from .ofp_const import (
    OFPG_ANY,
    OFPTT_ALL,
    BadRequestCode,
    ErrorType,
    FlowModCommand,
    FlowModFailedCode,
    FlowModFlags,
    FlowRemovedReason,
    OxmField,
    PortNo,
)
from .oxm import FIELDS, Match, check_match
from .wire import ErrorCode

_METADATA = OxmField.METADATA
_TUNNEL_ID = OxmField.TUNNEL_ID
_ALL_FLAGS = sum(int(f) for f in FlowModFlags)  # an int: ~ of an IntFlag stays within it

_EXEC_ORDER = {I.Meter: 0, I.ApplyActions: 1, I.ClearActions: 2, I.WriteActions: 3,
               I.WriteMetadata: 4, I.GotoTable: 5}
"""5.9: the order in which an entry's instructions run, whatever order they were sent in."""

Compiled = tuple[tuple[int, int, int], ...]


def _flow_mod_failed(code: FlowModFailedCode) -> ErrorCode:
    return (ErrorType.FLOW_MOD_FAILED, code)


def compile_match(match: Match) -> Compiled:
    """``(field, value, mask)`` for each basic-class TLV; an unmasked field's mask is all
    ones of its width.  The match must have passed :func:`check_match`."""
    out = []
    for tlv in match:
        spec = FIELDS[tlv.field]
        mask = tlv.int_mask
        out.append((tlv.field, tlv.int_value, (1 << spec.bits) - 1 if mask is None else mask))
    return tuple(out)


def matches(compiled: Compiled, fields: dict[int, int], metadata: int) -> bool:
    """Whether a packet with ``fields`` (and pipeline ``metadata``) matches.  A field the
    packet lacks fails the match, except the tunnel ID, 0 for a packet that came in on no
    tunnel."""
    for field, value, mask in compiled:
        if field == _METADATA:
            have = metadata
        else:
            got = fields.get(field)
            if got is None:
                if field != _TUNNEL_ID:
                    return False
                got = 0
            have = got
        if have & mask != value:
            return False
    return True


def _as_dict(compiled: Compiled) -> dict[int, tuple[int, int]]:
    return {f: (v, m) for f, v, m in compiled}


def overlaps(a: Compiled, b: Compiled) -> bool:
    """Whether some packet could match both: every field both constrain agrees where both
    masks care (a field only one constrains is a wildcard in the other)."""
    bd = _as_dict(b)
    for field, value, mask in a:
        other = bd.get(field)
        if other is not None and (value ^ other[0]) & mask & other[1]:
            return False
    return True


def covers(general: Compiled, specific: Compiled) -> bool:
    """Whether ``specific`` is as specific as ``general`` or more (non-strict modify, delete
    and stats select entries this way): each field of ``general`` is in ``specific`` with
    at least its mask bits and the same value under them."""
    sd = _as_dict(specific)
    for field, value, mask in general:
        other = sd.get(field)
        if other is None or other[1] & mask != mask or other[0] & mask != value:
            return False
    return True


def same_match(a: Compiled, b: Compiled) -> bool:
    """Whether two matches select exactly the same packets field for field (strict
    commands), whatever order their TLVs were sent in."""
    return _as_dict(a) == _as_dict(b)


class FlowEntry:
    """An installed flow.  ``match``, ``instructions``, ``cookie``, ``flags`` and the
    timeouts are as sent; ``packet_count``/``byte_count`` are plain attributes the data path
    bumps in place; ``installed`` and ``last_used`` are on the caller's clock."""

    __slots__ = (
        "byte_count",
        "compiled",
        "cookie",
        "flags",
        "hard_timeout",
        "idle_timeout",
        "installed",
        "instructions",
        "last_used",
        "match",
        "ordered",
        "packet_count",
        "priority",
        "table_id",
    )

    def __init__(self, mod: FlowMod, now: float) -> None:
        self.table_id = mod.table_id
        self.priority = mod.priority
        self.match = mod.match
        self.compiled = compile_match(mod.match)
        self.cookie = mod.cookie
        self.flags = mod.flags
        self.idle_timeout = mod.idle_timeout
        self.hard_timeout = mod.hard_timeout
        self.instructions: tuple[I.Instruction, ...] = ()
        self.ordered: tuple[I.Instruction, ...] = ()
        self.set_instructions(mod.instructions)
        self.installed = now
        self.last_used = now
        self.packet_count = 0
        self.byte_count = 0

    def set_instructions(self, instructions: tuple[I.Instruction, ...]) -> None:
        self.instructions = instructions
        self.ordered = tuple(sorted(instructions, key=lambda i: _EXEC_ORDER.get(type(i), 9)))

    @property
    def is_table_miss(self) -> bool:
        """Priority 0 and an empty match: the entry whose packet-ins say ``OFPR_NO_MATCH``."""
        return self.priority == 0 and not self.compiled

    def actions(self) -> Iterator[A.Action]:
        for ins in self.instructions:
            if isinstance(ins, (I.ApplyActions, I.WriteActions)):
                yield from ins.actions

    def outputs_to(self, port: int) -> bool:
        return port == PortNo.ANY or any(
            isinstance(a, A.Output) and a.port == port for a in self.actions())

    def uses_group(self, group: int) -> bool:
        return group == OFPG_ANY or any(
            isinstance(a, A.Group) and a.group_id == group for a in self.actions())

    def duration(self, now: float) -> tuple[int, int]:
        elapsed = max(0.0, now - self.installed)
        sec = int(elapsed)
        return sec, min(999_999_999, int((elapsed - sec) * 1e9))

    def expiry(self) -> tuple[float, FlowRemovedReason] | None:
        """When this entry times out and why (the earlier of the two), or None."""
        best: tuple[float, FlowRemovedReason] | None = None
        if self.hard_timeout:
            best = (self.installed + self.hard_timeout, FlowRemovedReason.HARD_TIMEOUT)
        if self.idle_timeout:
            idle = self.last_used + self.idle_timeout
            if best is None or idle < best[0]:
                best = (idle, FlowRemovedReason.IDLE_TIMEOUT)
        return best

    def stats(self, now: float) -> FlowStats:
        sec, nsec = self.duration(now)
        return FlowStats(self.table_id, sec, nsec, self.priority, self.idle_timeout,
                         self.hard_timeout, self.flags, self.cookie, self.packet_count,
                         self.byte_count, self.match, self.instructions)

    def removed(self, reason: int, now: float) -> FlowRemoved:
        sec, nsec = self.duration(now)
        return FlowRemoved(self.cookie, self.priority, reason, self.table_id, sec, nsec,
                           self.idle_timeout, self.hard_timeout, self.packet_count,
                           self.byte_count, self.match)


class FlowTable:
    """One table: entries by descending priority (equal priorities in installation order),
    its lookup counters and its exact-match cache."""

    __slots__ = ("cache", "entries", "lookup_count", "matched_count", "table_id")

    CACHE_LIMIT = 65536
    """Entries the cache holds before it is emptied (a scan of distinct packets must not
    grow it without bound)."""

    def __init__(self, table_id: int) -> None:
        self.table_id = table_id
        self.entries: list[FlowEntry] = []
        self.cache: dict[tuple[object, ...], FlowEntry | None] = {}
        self.lookup_count = 0
        self.matched_count = 0

    def changed(self) -> None:
        """Every change to the table goes through here, so no cached answer outlives it."""
        self.cache.clear()

    def insert(self, entry: FlowEntry) -> None:
        i = 0
        while i < len(self.entries) and self.entries[i].priority >= entry.priority:
            i += 1
        self.entries.insert(i, entry)
        self.changed()

    def remove(self, doomed: Iterable[FlowEntry]) -> None:
        gone = {id(e) for e in doomed}
        if gone:
            self.entries = [e for e in self.entries if id(e) not in gone]
            self.changed()

    def lookup_uncached(self, fields: dict[int, int], metadata: int) -> FlowEntry | None:
        """The highest-priority entry matching, by scanning."""
        for entry in self.entries:
            if matches(entry.compiled, fields, metadata):
                return entry
        return None

    def lookup(self, key: tuple[tuple[int, int], ...], fields: dict[int, int],
               metadata: int) -> FlowEntry | None:
        """The highest-priority entry matching the packet whose field tuple is ``key``
        (``fields`` as a dict), through the cache."""
        ck = (key, metadata)
        try:
            return self.cache[ck]
        except KeyError:
            pass
        entry = self.lookup_uncached(fields, metadata)
        if len(self.cache) >= self.CACHE_LIMIT:
            self.cache.clear()
        self.cache[ck] = entry
        return entry


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entries a non-strict delete or a stats request names (5.3, 7.3.4.2)."""

    table_id: int
    match: Match
    cookie: int = 0
    cookie_mask: int = 0
    out_port: int = PortNo.ANY
    out_group: int = OFPG_ANY
    priority: int | None = None
    """Only for the strict commands: the exact priority, and then the match must be the
    same rather than covered."""


class FlowTables:
    """The switch's tables, 0 to ``n_tables - 1``, and the FLOW_MOD commands over them."""

    def __init__(self, n_tables: int) -> None:
        if not 1 <= n_tables <= 255:
            raise ValueError(f"{n_tables} tables (1 to 255)")
        self.tables = [FlowTable(i) for i in range(n_tables)]

    def __len__(self) -> int:
        return len(self.tables)

    def tables_for(self, table_id: int) -> list[FlowTable] | None:
        """The one table, every table for ``OFPTT_ALL``, None for a number out of range."""
        if table_id == OFPTT_ALL:
            return self.tables
        if table_id < len(self.tables):
            return [self.tables[table_id]]
        return None

    def select(self, sel: Selection) -> list[FlowEntry]:
        """The entries ``sel`` names (an empty list for a table out of range)."""
        compiled = compile_match(sel.match)
        out = []
        for table in self.tables_for(sel.table_id) or ():
            for e in table.entries:
                if sel.cookie_mask and (e.cookie ^ sel.cookie) & sel.cookie_mask:
                    continue
                if sel.priority is not None:
                    if e.priority != sel.priority or not same_match(e.compiled, compiled):
                        continue
                elif not covers(compiled, e.compiled):
                    continue
                if e.outputs_to(sel.out_port) and e.uses_group(sel.out_group):
                    out.append(e)
        return out

    def flow_mod(self, mod: FlowMod, now: float) -> tuple[ErrorCode | None, list[FlowRemoved]]:
        """Apply ``mod``: the error refusing it (and nothing changed), or None and the
        FLOW_REMOVED messages its deletions owe the controller."""
        if mod.command not in tuple(FlowModCommand):
            return _flow_mod_failed(FlowModFailedCode.BAD_COMMAND), []
        deleting = mod.command in (FlowModCommand.DELETE, FlowModCommand.DELETE_STRICT)
        if self.tables_for(mod.table_id) is None or (mod.table_id == OFPTT_ALL and not deleting):
            return _flow_mod_failed(FlowModFailedCode.BAD_TABLE_ID), []
        if mod.flags & ~_ALL_FLAGS:
            return _flow_mod_failed(FlowModFailedCode.BAD_FLAGS), []
        err = check_match(mod.match)
        if err is not None:
            return err, []
        if mod.command == FlowModCommand.ADD:
            return self._add(mod, now), []
        strict = mod.command in (FlowModCommand.MODIFY_STRICT, FlowModCommand.DELETE_STRICT)
        sel = Selection(mod.table_id, mod.match, mod.cookie, mod.cookie_mask,
                        mod.out_port if deleting else PortNo.ANY,
                        mod.out_group if deleting else OFPG_ANY,
                        mod.priority if strict else None)
        chosen = self.select(sel)
        if deleting:
            return None, self.delete(chosen, FlowRemovedReason.DELETE, now)
        for e in chosen:
            e.set_instructions(mod.instructions)
            if mod.flags & FlowModFlags.RESET_COUNTS:
                e.packet_count = e.byte_count = 0
        for table in {e.table_id for e in chosen}:
            self.tables[table].changed()
        return None, []

    def _add(self, mod: FlowMod, now: float) -> ErrorCode | None:
        table = self.tables[mod.table_id]
        entry = FlowEntry(mod, now)
        same = [e for e in table.entries
                if e.priority == mod.priority and same_match(e.compiled, entry.compiled)]
        if mod.flags & FlowModFlags.CHECK_OVERLAP and any(
                e.priority == mod.priority and overlaps(e.compiled, entry.compiled)
                for e in table.entries if e not in same):
            return _flow_mod_failed(FlowModFailedCode.OVERLAP)
        if same and not mod.flags & FlowModFlags.RESET_COUNTS:
            entry.packet_count = same[0].packet_count
            entry.byte_count = same[0].byte_count
        table.remove(same)
        table.insert(entry)
        return None

    def delete(self, entries: list[FlowEntry], reason: int, now: float) -> list[FlowRemoved]:
        """Remove ``entries``; the FLOW_REMOVED of those installed with
        ``OFPFF_SEND_FLOW_REM``."""
        for table in self.tables:
            table.remove(e for e in entries if e.table_id == table.table_id)
        return [e.removed(reason, now) for e in entries if e.flags & FlowModFlags.SEND_FLOW_REM]

    def next_deadline(self) -> float | None:
        """The earliest time an entry times out, or None."""
        times = [x[0] for t in self.tables for e in t.entries if (x := e.expiry()) is not None]
        return min(times, default=None)

    def expire(self, now: float) -> list[FlowRemoved]:
        """Remove every entry whose timeout has passed at ``now``."""
        out: list[FlowRemoved] = []
        for table in self.tables:
            doomed = []
            for e in table.entries:
                x = e.expiry()
                if x is not None and x[0] <= now:
                    doomed.append(e)
                    if e.flags & FlowModFlags.SEND_FLOW_REM:
                        out.append(e.removed(x[1], now))
            table.remove(doomed)
        return out

    def check_table_id(self, table_id: int) -> ErrorCode | None:
        """``OFPBRC_BAD_TABLE_ID`` for a stats request naming a table that does not exist."""
        if self.tables_for(table_id) is None:
            return (ErrorType.BAD_REQUEST, BadRequestCode.BAD_TABLE_ID)
        return None
