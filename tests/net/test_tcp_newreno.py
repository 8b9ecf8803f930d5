"""NewReno, the default controller, alone on a virtual ACK clock (RFC 5681 §3.1)."""

from __future__ import annotations

from fata.net.tcp import NewReno

from ._ackclock import MSS, Path


def test_slow_start_doubles_per_rtt_up_to_ssthresh() -> None:
    cc = NewReno()
    path = Path(10, 0.1)
    path.ssthresh = 35 * MSS
    path.rtts(cc, 1)
    assert path.segments == 20
    path.rtts(cc, 1)
    assert path.segments == 35  # then congestion avoidance


def test_congestion_avoidance_adds_one_segment_per_window() -> None:
    cc = NewReno()
    path = Path(50, 0.1)
    path.ssthresh = 10 * MSS
    path.rtts(cc, 10)
    assert 59 <= path.segments <= 60
    path.rtts(cc, 5, per_ack=2)  # byte counting: delayed ACKs do not halve the growth
    assert 64 <= path.segments <= 65


def test_loss_halves_the_flight_and_timeout_restarts_from_one_segment() -> None:
    cc = NewReno()
    path = Path(40, 0.1)
    cc.on_loss(path, 40 * MSS, 0.0)
    assert path.ssthresh == 20 * MSS and path.cwnd == 40 * MSS  # PRR and recovery do the rest
    cc.on_timeout(path, 30 * MSS, True, 1.0)
    assert path.ssthresh == 15 * MSS and path.cwnd == MSS
    cc.on_timeout(path, 30 * MSS, False, 2.0)
    assert path.ssthresh == 15 * MSS and path.cwnd == MSS
    cc.on_loss(path, MSS, 3.0)
    assert path.ssthresh == 2 * MSS


def test_undo_takes_back_the_reduction() -> None:
    cc = NewReno()
    path = Path(40, 0.1)
    path.prior_cwnd, path.prior_ssthresh = path.cwnd, path.ssthresh
    cc.on_loss(path, 40 * MSS, 0.0)
    path.cwnd = path.ssthresh
    cc.on_undo(path, 0.1)
    assert (path.cwnd, path.ssthresh) == (path.prior_cwnd, path.prior_ssthresh)
