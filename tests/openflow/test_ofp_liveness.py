"""The inactivity probe alone, on a virtual clock."""

from __future__ import annotations

from fata_openflow_switch.liveness import Due, Liveness


def test_quiet_then_probe_then_dead() -> None:
    alive = Liveness(5.0, now=100.0)
    assert alive.next_deadline() == 105.0
    assert alive.on_timer(104.9) is None
    assert alive.on_timer(105.0) is Due.PROBE
    assert alive.next_deadline() == 110.0
    assert alive.on_timer(109.0) is None
    assert alive.on_timer(110.0) is Due.DEAD


def test_any_message_is_a_sign_of_life() -> None:
    alive = Liveness(5.0, now=0.0)
    assert alive.on_timer(5.0) is Due.PROBE
    alive.heard(7.0)  # the echo reply, or anything else
    assert alive.next_deadline() == 12.0 and alive.on_timer(11.0) is None
    assert alive.on_timer(12.0) is Due.PROBE


def test_interval_zero_never_probes() -> None:
    alive = Liveness(0.0, now=0.0)
    assert alive.next_deadline() is None and alive.on_timer(1e9) is None
