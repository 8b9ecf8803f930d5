"""The group table (specification 1.3.5, 5.6 and 6.5): GROUP_MOD's commands and checks,
and which buckets a packet takes.

A group keeps its type and buckets as sent (group-desc echoes them) and counters for the
group and each bucket.  Which actions a bucket may hold is the switch's to say (the same
check as a flow's actions); here is what is about groups themselves: their numbers, types,
the bucket rules of each type, watch ports and groups, chaining to groups that exist and
never in a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import actions as A
from .buckets import Bucket
from .messages import GroupMod
from .multipart import Counter, GroupDesc, GroupStats
from .ofp_const import (
    OFPG_ALL,
    OFPG_ANY,
    OFPG_MAX,
    BadActionCode,
    ErrorType,
    GroupModCommand,
    GroupModFailedCode,
    GroupType,
    PortNo,
)
from .wire import ErrorCode


def _failed(code: GroupModFailedCode) -> ErrorCode:
    return (ErrorType.GROUP_MOD_FAILED, code)


class GroupEntry:
    """An installed group; counters are bumped in place by the data path."""

    __slots__ = ("bucket_bytes", "bucket_packets", "buckets", "byte_count", "group_id",
                 "group_type", "installed", "packet_count")

    def __init__(self, mod: GroupMod, now: float) -> None:
        self.group_id = mod.group_id
        self.group_type = mod.group_type
        self.buckets = mod.buckets
        self.installed = now
        self.packet_count = self.byte_count = 0
        self.bucket_packets = [0] * len(mod.buckets)
        self.bucket_bytes = [0] * len(mod.buckets)

    def chained(self) -> set[int]:
        """The groups this one's buckets send to."""
        return {a.group_id for b in self.buckets for a in b.actions if isinstance(a, A.Group)}

    def desc(self) -> GroupDesc:
        return GroupDesc(self.group_type, self.group_id, self.buckets)

    def stats(self, now: float, ref_count: int) -> GroupStats:
        elapsed = max(0.0, now - self.installed)
        sec = int(elapsed)
        return GroupStats(self.group_id, ref_count, self.packet_count, self.byte_count, sec,
                          min(999_999_999, int((elapsed - sec) * 1e9)),
                          tuple(Counter(p, b) for p, b in zip(self.bucket_packets,
                                                              self.bucket_bytes, strict=True)))


class GroupTable:
    """Groups by number.  ``port_live(port_no)`` says whether a port can carry packets, for
    fast-failover (the switch's port state)."""

    def __init__(self, port_live: Callable[[int], bool], max_groups: int = 4096) -> None:
        self.groups: dict[int, GroupEntry] = {}
        self.port_live = port_live
        self.max_groups = max_groups

    def __contains__(self, group_id: int) -> bool:
        return group_id in self.groups

    def check(self, mod: GroupMod, check_actions: Callable[[Iterable[A.Action]],
                                                            ErrorCode | None]) -> ErrorCode | None:
        """The error refusing an ADD or MODIFY, or None."""
        if mod.group_id > OFPG_MAX:
            return _failed(GroupModFailedCode.INVALID_GROUP)
        if mod.group_type not in tuple(GroupType):
            return _failed(GroupModFailedCode.BAD_TYPE)
        if mod.group_type == GroupType.INDIRECT and len(mod.buckets) != 1:
            return _failed(GroupModFailedCode.INVALID_GROUP)
        for b in mod.buckets:
            if mod.group_type != GroupType.SELECT and b.weight != 0:
                return _failed(GroupModFailedCode.WEIGHT_UNSUPPORTED)
            if mod.group_type == GroupType.FF:
                if b.watch_port == PortNo.ANY and b.watch_group == OFPG_ANY:
                    return _failed(GroupModFailedCode.BAD_WATCH)
                if b.watch_group != OFPG_ANY and b.watch_group not in self.groups:
                    return _failed(GroupModFailedCode.BAD_WATCH)
            for a in b.actions:
                if isinstance(a, A.Group):
                    if a.group_id not in self.groups:  # as for a flow's group action
                        return (ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_GROUP)
                    if self._reaches(a.group_id, mod.group_id):
                        return _failed(GroupModFailedCode.LOOP)
            err = check_actions(a for a in b.actions if not isinstance(a, A.Group))
            if err is not None:
                return err
        return None

    def _reaches(self, start: int, target: int) -> bool:
        seen: set[int] = set()
        todo = [start]
        while todo:
            g = todo.pop()
            if g == target:
                return True
            if g in seen or g not in self.groups:
                continue
            seen.add(g)
            todo.extend(self.groups[g].chained())
        return False

    def apply(self, mod: GroupMod, now: float, check_actions: Callable[[Iterable[A.Action]],
                                                                        ErrorCode | None]
              ) -> tuple[ErrorCode | None, list[int]]:
        """Apply ``mod``: its error (nothing changed), or None and the groups deleted (whose
        flows the switch removes, 6.5)."""
        if mod.command == GroupModCommand.DELETE:
            doomed = list(self.groups) if mod.group_id == OFPG_ALL else (
                [mod.group_id] if mod.group_id in self.groups else [])
            # a group chained from others goes with them (so nothing points at nothing)
            closure = set(doomed)
            changed = True
            while changed:
                changed = False
                for g in self.groups.values():
                    if g.group_id not in closure and g.chained() & closure:
                        closure.add(g.group_id)
                        changed = True
            for g in closure:
                del self.groups[g]
            return None, sorted(closure)
        if mod.command not in (GroupModCommand.ADD, GroupModCommand.MODIFY):
            return _failed(GroupModFailedCode.BAD_COMMAND), []
        err = self.check(mod, check_actions)
        if err is not None:
            return err, []
        exists = mod.group_id in self.groups
        if mod.command == GroupModCommand.ADD:
            if exists:
                return _failed(GroupModFailedCode.GROUP_EXISTS), []
            if len(self.groups) >= self.max_groups:
                return _failed(GroupModFailedCode.OUT_OF_GROUPS), []
        elif not exists:
            return _failed(GroupModFailedCode.UNKNOWN_GROUP), []
        entry = GroupEntry(mod, now)
        if exists:  # modify keeps the group's counters, not its buckets'
            old = self.groups[mod.group_id]
            entry.installed, entry.packet_count, entry.byte_count = (
                old.installed, old.packet_count, old.byte_count)
        self.groups[mod.group_id] = entry
        return None, []

    def live(self, group_id: int, depth: int = 0) -> bool:
        """A group is live when one of its buckets is (5.8); depth bounds a chain."""
        g = self.groups.get(group_id)
        if g is None or depth > 16:
            return False
        return any(self.bucket_live(b, depth) for b in g.buckets)

    def bucket_live(self, b: Bucket, depth: int = 0) -> bool:
        if b.watch_port != PortNo.ANY and not self.port_live(b.watch_port):
            return False
        return b.watch_group == OFPG_ANY or self.live(b.watch_group, depth + 1)

    def choose(self, g: GroupEntry, flow_hash: int) -> list[int]:
        """The buckets (indices) a packet takes: every one (all), one by weight from the
        packet's flow hash so a flow keeps its bucket (select), the one (indirect), the
        first live one (fast failover)."""
        if g.group_type == GroupType.ALL:
            return list(range(len(g.buckets)))
        if g.group_type == GroupType.INDIRECT:
            return [0] if g.buckets else []
        if g.group_type == GroupType.FF:
            for i, b in enumerate(g.buckets):
                if self.bucket_live(b):
                    return [i]
            return []
        weights = [(i, max(b.weight, 1) if len(g.buckets) == 1 else b.weight)
                   for i, b in enumerate(g.buckets) if self.bucket_live(b)]
        total = sum(w for _, w in weights)
        if not total:
            return []
        point = flow_hash % total
        for i, w in weights:
            if point < w:
                return [i]
            point -= w
        return []
