"""Flow tables: matching with masks and priorities, every FLOW_MOD command with its
filters and errors, timeouts on a virtual clock, and the exact-match cache."""

from __future__ import annotations

import pytest
from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch.flow_table import (
    FlowTables,
    Selection,
    compile_match,
    covers,
    matches,
    overlaps,
)
from fata_openflow_switch.messages import FlowMod
from fata_openflow_switch.ofp_const import (
    OFPTT_ALL,
    BadMatchCode,
    ErrorType,
    FlowModCommand,
    FlowModFailedCode,
    FlowModFlags,
    FlowRemovedReason,
)
from fata_openflow_switch.ofp_const import OxmField as F
from fata_openflow_switch.oxm import FIELDS, Match, oxm
from fata_openflow_switch.packet import parse
from hypothesis import given, settings
from hypothesis import strategies as st

from ._frames import tcp4_frame

IPV4 = oxm("eth_type", 0x0800)
TCP = oxm("ip_proto", 6)


def out(port: int) -> tuple[I.Instruction, ...]:
    return (I.ApplyActions((A.Output(port),)),)


def add(tables: FlowTables, *fields, priority: int = 100, now: float = 0.0, **kw):
    mod = FlowMod(command=FlowModCommand.ADD, priority=priority, match=Match(tuple(fields)),
                  instructions=kw.pop("instructions", out(1)), **kw)
    return tables.flow_mod(mod, now)


def hit(tables: FlowTables, frame: bytes, in_port: int = 1, metadata: int = 0, table: int = 0):
    p = parse(frame, in_port)
    return tables.tables[table].lookup(p.key, p.fields, metadata)


def test_highest_priority_match_wins_and_masks_are_honoured() -> None:
    t = FlowTables(1)
    add(t, priority=0)
    add(t, IPV4, oxm("ipv4_dst", 0x0A000000, 0xFF000000), priority=10, cookie=1)
    add(t, IPV4, oxm("ipv4_dst", 0x0A000002), priority=20, cookie=2)
    add(t, IPV4, oxm("ipv4_dst", 0x0A000002), priority=5, cookie=3)
    assert hit(t, tcp4_frame(dst=0x0A000002)).cookie == 2
    assert hit(t, tcp4_frame(dst=0x0A0000FF)).cookie == 1
    assert hit(t, tcp4_frame(dst=0x0B000002)).priority == 0
    assert hit(t, tcp4_frame(dst=0x0B000002)).is_table_miss


def test_metadata_and_in_port_and_vlan_none() -> None:
    t = FlowTables(1)
    add(t, oxm("metadata", 0x10, 0xF0), cookie=1)
    add(t, oxm("in_port", 7), oxm("vlan_vid", 0), priority=50, cookie=2)
    assert hit(t, tcp4_frame(), metadata=0x1F).cookie == 1
    assert hit(t, tcp4_frame(), metadata=0x2F) is None
    assert hit(t, tcp4_frame(), in_port=7).cookie == 2
    assert hit(t, tcp4_frame(vlan=(3, 0)), in_port=7) is None


def test_add_errors() -> None:
    t = FlowTables(2)
    assert add(t, oxm("tcp_dst", 80))[0] == (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ)
    assert add(t, table_id=2)[0] == (ErrorType.FLOW_MOD_FAILED, FlowModFailedCode.BAD_TABLE_ID)
    assert add(t, table_id=OFPTT_ALL)[0] == (ErrorType.FLOW_MOD_FAILED,
                                              FlowModFailedCode.BAD_TABLE_ID)
    assert add(t, flags=1 << 7)[0] == (ErrorType.FLOW_MOD_FAILED, FlowModFailedCode.BAD_FLAGS)
    bad = FlowMod(command=7)
    assert t.flow_mod(bad, 0)[0] == (ErrorType.FLOW_MOD_FAILED, FlowModFailedCode.BAD_COMMAND)
    assert not any(tab.entries for tab in t.tables)


def test_check_overlap() -> None:
    t = FlowTables(1)
    add(t, IPV4, oxm("ipv4_src", 0x0A000000, 0xFFFFFF00))
    flags = FlowModFlags.CHECK_OVERLAP
    overlap = (ErrorType.FLOW_MOD_FAILED, FlowModFailedCode.OVERLAP)
    assert add(t, IPV4, TCP, flags=flags)[0] == overlap
    assert add(t, IPV4, oxm("ipv4_src", 0x0B000000, 0xFF000000), flags=flags)[0] is None
    assert add(t, IPV4, TCP, flags=flags, priority=101)[0] is None  # other priority
    assert add(t, oxm("eth_type", 0x86DD), flags=flags)[0] is None  # disjoint types
    assert len(t.tables[0].entries) == 4


def test_identical_add_replaces_keeping_or_resetting_counts() -> None:
    t = FlowTables(1)
    add(t, IPV4, cookie=1)
    hit(t, tcp4_frame()).packet_count = 5
    add(t, IPV4, cookie=2, instructions=out(2))
    (entry,) = t.tables[0].entries
    assert (entry.cookie, entry.packet_count, entry.instructions) == (2, 5, out(2))
    add(t, IPV4, cookie=3, flags=FlowModFlags.RESET_COUNTS)
    assert [(e.cookie, e.packet_count) for e in t.tables[0].entries] == [(3, 0)]


def mod(command: int, *fields, **kw) -> FlowMod:
    return FlowMod(command=command, match=Match(tuple(fields)), **kw)


def test_modify_non_strict_and_strict_with_cookie_mask() -> None:
    t = FlowTables(1)
    add(t, IPV4, cookie=0x11, priority=1)
    add(t, IPV4, TCP, cookie=0x21, priority=2)
    add(t, oxm("eth_type", 0x0806), cookie=0x12, priority=3)
    err, _ = t.flow_mod(mod(FlowModCommand.MODIFY, IPV4, instructions=out(9)), 0)
    assert err is None
    changed = {e.cookie for e in t.tables[0].entries if e.instructions == out(9)}
    assert changed == {0x11, 0x21}
    t.flow_mod(mod(FlowModCommand.MODIFY, cookie=0x02, cookie_mask=0x0F,
                   instructions=out(8)), 0)
    assert {e.cookie for e in t.tables[0].entries if e.instructions == out(8)} == {0x12}
    t.flow_mod(mod(FlowModCommand.MODIFY_STRICT, IPV4, priority=2, instructions=out(7)), 0)
    assert not any(e.instructions == out(7) for e in t.tables[0].entries)  # priority differs
    t.flow_mod(mod(FlowModCommand.MODIFY_STRICT, TCP, IPV4, priority=2, instructions=out(7)), 0)
    assert [e.cookie for e in t.tables[0].entries if e.instructions == out(7)] == [0x21]
    assert len(t.tables[0].entries) == 3  # modify never adds (1.3)
    t.flow_mod(mod(FlowModCommand.MODIFY, oxm("eth_type", 0x86DD), instructions=out(6)), 0)
    assert len(t.tables[0].entries) == 3


def test_delete_filters_and_flow_removed() -> None:
    t = FlowTables(3)
    rem = FlowModFlags.SEND_FLOW_REM
    add(t, IPV4, cookie=1, flags=rem, instructions=out(1))
    add(t, IPV4, TCP, cookie=2, flags=rem, instructions=out(2))
    add(t, IPV4, cookie=3, table_id=2, instructions=(I.WriteActions((A.Output(2),)),))
    add(t, cookie=4, priority=0)
    err, removed = t.flow_mod(mod(FlowModCommand.DELETE, IPV4, table_id=OFPTT_ALL,
                                  out_port=2), 5.5)
    assert err is None
    assert [(r.cookie, r.reason, r.duration_sec, r.duration_nsec) for r in removed] == [
        (2, FlowRemovedReason.DELETE, 5, 500_000_000)]
    assert {e.cookie for tab in t.tables for e in tab.entries} == {1, 4}
    err, removed = t.flow_mod(mod(FlowModCommand.DELETE_STRICT, priority=100), 6)
    assert removed == [] and {e.cookie for e in t.tables[0].entries} == {1, 4}
    t.flow_mod(mod(FlowModCommand.DELETE_STRICT, priority=0), 6)
    assert {e.cookie for e in t.tables[0].entries} == {1}
    _, removed = t.flow_mod(mod(FlowModCommand.DELETE, cookie=1, cookie_mask=0xFF), 6)
    assert [r.match for r in removed] == [Match((IPV4,))] and not t.tables[0].entries


def test_timeouts_on_a_virtual_clock() -> None:
    t = FlowTables(1)
    rem = FlowModFlags.SEND_FLOW_REM
    add(t, IPV4, cookie=1, idle_timeout=10, flags=rem, now=100)
    add(t, TCP, IPV4, cookie=2, hard_timeout=15, idle_timeout=100, flags=rem, now=100)
    add(t, oxm("eth_type", 0x0806), cookie=3, hard_timeout=5, now=100)
    assert t.next_deadline() == 105
    assert t.expire(104.9) == [] and len(t.tables[0].entries) == 3
    assert t.expire(105) == []  # expired without SEND_FLOW_REM: silently
    (idle_flow,) = [e for e in t.tables[0].entries if e.cookie == 1]
    idle_flow.last_used = 108  # the idle flow was hit at 108
    assert t.expire(111) == [] and t.next_deadline() == 115
    (gone,) = t.expire(115)
    assert (gone.cookie, gone.reason, gone.duration_sec) == (2, FlowRemovedReason.HARD_TIMEOUT, 15)
    (idle,) = t.expire(118)
    assert (idle.cookie, idle.reason) == (1, FlowRemovedReason.IDLE_TIMEOUT)
    assert t.next_deadline() is None


def test_cache_is_invalidated_by_every_change() -> None:
    t = FlowTables(1)
    frame = tcp4_frame()
    add(t, IPV4, cookie=1, priority=1)
    assert hit(t, frame).cookie == 1 and t.tables[0].cache
    add(t, IPV4, TCP, cookie=2, priority=2)
    assert hit(t, frame).cookie == 2
    t.flow_mod(mod(FlowModCommand.DELETE_STRICT, IPV4, TCP, priority=2), 0)
    assert hit(t, frame).cookie == 1
    add(t, IPV4, cookie=3, priority=3, hard_timeout=1)
    assert hit(t, frame).cookie == 3
    t.expire(2)
    assert hit(t, frame).cookie == 1


def test_selection_for_stats() -> None:
    t = FlowTables(2)
    add(t, IPV4, TCP, cookie=1)
    add(t, IPV4, cookie=2, table_id=1)
    assert [e.cookie for e in t.select(Selection(OFPTT_ALL, Match((IPV4,))))] == [1, 2]
    assert [e.cookie for e in t.select(Selection(1, Match()))] == [2]
    assert t.select(Selection(OFPTT_ALL, Match((TCP, IPV4)), out_port=2)) == []


# --- random tables and packets: the relations, the cache ---------------------------------

_FRAMES = st.builds(tcp4_frame, st.sampled_from([0x0A000001, 0x0A000102, 0x0B000001]),
                    st.sampled_from([0x0A000002, 0x0A0000FF]), st.sampled_from([80, 443]),
                    st.sampled_from([80, 443, 1234]),
                    st.sampled_from([None, (5, 0), (6, 7)]))


def _field(name: str, values: list[int]) -> st.SearchStrategy:
    maskable = {"ipv4_src", "ipv4_dst", "vlan_vid", "eth_dst"}
    value = st.sampled_from(values)
    if name in maskable:
        return st.one_of(value.map(lambda v: oxm(name, v)),
                         st.tuples(value, st.sampled_from([0xFF000000, 0xFFFFFF00, 0x1000]))
                         .filter(lambda vm: name != "vlan_vid" or vm[1] == 0x1000)
                         .filter(lambda vm: name == "vlan_vid" or vm[1] != 0x1000)
                         .map(lambda vm: oxm(name, vm[0] & vm[1], vm[1])))
    return value.map(lambda v: oxm(name, v))


_MATCHES = st.lists(st.one_of(
    _field("ipv4_src", [0x0A000001, 0x0A000100, 0x0B000000]),
    _field("ipv4_dst", [0x0A000002, 0x0A0000FF]),
    _field("tcp_dst", [80, 443]),
    _field("in_port", [1, 2]),
    _field("vlan_vid", [0, 0x1005, 0x1006]),
), max_size=4, unique_by=lambda tlv: tlv.field).map(
    lambda tlvs: Match(tuple(tlvs) + ((IPV4, TCP) if any(
        x.field in (F.IPV4_SRC, F.IPV4_DST, F.TCP_DST) for x in tlvs) else ()))
)
_MODS = st.lists(st.tuples(_MATCHES, st.integers(0, 3), st.sampled_from(list(FlowModCommand))),
                 max_size=12)


@settings(max_examples=300, deadline=None)
@given(_MODS, st.lists(st.tuples(_FRAMES, st.integers(1, 2)), max_size=10))
def test_cached_lookup_equals_uncached_scan(mods, packets) -> None:
    """After every flow-mod of a random sequence, each packet's cached answer is the scan's,
    and the scan's is an entry of the highest priority among those that match."""
    t = FlowTables(1)
    table = t.tables[0]
    for i, (match, priority, command) in enumerate(mods):
        assert t.flow_mod(FlowMod(cookie=i, command=command, priority=priority, match=match,
                                  instructions=out(1)), 0)[0] is None
        for frame, port in packets:
            p = parse(frame, port)
            cached = table.lookup(p.key, p.fields, 0)
            assert cached is table.lookup_uncached(p.fields, 0)
            matching = [e for e in table.entries if matches(e.compiled, p.fields, 0)]
            if not matching:
                assert cached is None
            else:
                assert cached in matching
                assert cached.priority == max(e.priority for e in matching)


@given(_MATCHES, _MATCHES, _FRAMES, st.integers(1, 2))
def test_a_packet_matching_both_means_they_overlap(a: Match, b: Match, frame: bytes,
                                                   port: int) -> None:
    fa, fb = compile_match(a), compile_match(b)
    fields = parse(frame, port).fields
    if matches(fa, fields, 0) and matches(fb, fields, 0):
        assert overlaps(fa, fb) and overlaps(fb, fa)
    if covers(fa, fb) and matches(fb, fields, 0):
        assert matches(fa, fields, 0)


@pytest.mark.parametrize("spec", sorted(FIELDS.values(), key=lambda s: s.field),
                         ids=lambda s: s.name)
def test_every_field_compiles_with_its_full_width_mask(spec) -> None:
    ((field, value, mask),) = compile_match(Match((oxm(spec.field, 0),)))
    assert (field, value, mask) == (spec.field, 0, (1 << spec.bits) - 1)
