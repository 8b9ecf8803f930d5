"""The fail-standalone fallback (``learning.py``): learning, forwarding, flooding, filtering,
aging on the caller's clock and the table's bound."""

from __future__ import annotations

import pytest
from fata_openflow_switch.learning import LearningSwitch

from ._frames import mac

BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes) -> bytes:
    return dst + src + b"\x08\x00" + bytes(46)


A, B, C = mac(1), mac(2), mac(3)


def test_unknown_and_broadcast_flood_every_other_port() -> None:
    sw = LearningSwitch([1, 2, 3, 4])
    f = frame(BROADCAST, A)
    assert sw.process(2, [f], 0.0) == {1: [f], 3: [f], 4: [f]}
    g = frame(B, A)  # B never seen
    assert sw.process(2, [g], 0.0) == {1: [g], 3: [g], 4: [g]}
    assert sw.flooded == 2


def test_learned_destination_leaves_by_its_port_only() -> None:
    sw = LearningSwitch([1, 2, 3])
    sw.process(1, [frame(BROADCAST, A)], 0.0)
    reply = frame(A, B)
    assert sw.process(3, [reply], 1.0) == {1: [reply]}
    back = frame(B, A)
    assert sw.process(1, [back], 2.0) == {3: [back]}


def test_a_destination_behind_the_in_port_is_filtered() -> None:
    sw = LearningSwitch([1, 2])
    sw.process(1, [frame(BROADCAST, A)], 0.0)
    assert sw.process(1, [frame(A, B)], 0.0) == {}
    assert sw.filtered == 1


def test_a_moved_address_is_relearned() -> None:
    sw = LearningSwitch([1, 2, 3])
    sw.process(1, [frame(BROADCAST, A)], 0.0)
    sw.process(2, [frame(BROADCAST, A)], 1.0)
    assert sw.lookup(A, 1.0) == 2


def test_entries_age_out_on_injected_time() -> None:
    sw = LearningSwitch([1, 2, 3], aging=10.0)
    sw.process(1, [frame(BROADCAST, A)], 100.0)
    assert sw.lookup(A, 109.9) == 1
    f = frame(A, B)
    assert sw.process(2, [f], 110.0) == {1: [f], 3: [f]}  # aged: flooded again
    assert sw.lookup(A, 110.0) is None


def test_group_sources_are_not_learned_and_runts_dropped() -> None:
    sw = LearningSwitch([1, 2])
    sw.process(1, [frame(BROADCAST, b"\x01\x00\x5e\x00\x00\x01")], 0.0)
    assert len(sw) == 0
    assert sw.process(1, [b"\x00" * 13], 0.0) == {}


def test_the_table_is_bounded_least_recently_seen_first() -> None:
    sw = LearningSwitch([1, 2], capacity=2)
    sw.process(1, [frame(BROADCAST, A), frame(BROADCAST, B)], 0.0)
    sw.process(2, [frame(BROADCAST, A)], 1.0)  # A seen again: B is now the oldest
    sw.process(1, [frame(BROADCAST, C)], 2.0)
    assert len(sw) == 2
    assert sw.lookup(B, 2.0) is None and sw.lookup(A, 2.0) == 2 and sw.lookup(C, 2.0) == 1


def test_nonsense_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        LearningSwitch([1], aging=0)
    with pytest.raises(ValueError):
        LearningSwitch([1], capacity=0)
