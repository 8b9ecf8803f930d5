"""CUBIC (RFC 9438) on a virtual clock: the controller alone, driven by an ACK clock
(``_ackclock.Path``), then inside the engine."""

from __future__ import annotations

import pytest
from fata.net.tcp import Cubic, NewReno, TcpConfig, TcpEngine
from fata.net.tcp.congestion import Controlled, algorithm
from fata.net.tcp.congestion.cubic import BETA, C

from ._ackclock import MSS, Path
from .test_tcp_sim import request_reply


def run_after_loss(w_max: float, rtt: float, seconds: float, per_ack: int = 1,
                   cc: Cubic | None = None) -> tuple[Cubic, Path, list[tuple[float, float]]]:
    cc = cc or Cubic()
    path = Path(w_max, rtt)
    path.loss(cc)
    trace = []
    for _ in range(int(seconds / rtt)):
        path.rtts(cc, 1, per_ack)
        trace.append((path.now, path.segments))
    return cc, path, trace


def test_decrease_is_beta_and_k_is_the_time_back_to_w_max() -> None:
    cc, path, _ = run_after_loss(1000, 0.1, 0.1)
    assert path.ssthresh == int(1000 * MSS * BETA)
    assert cc.w_max == 1000 and cc.cwnd_prior == 1000
    assert cc.k == pytest.approx(((1000 - 700) / C) ** (1 / 3))  # 9.09 s


@pytest.mark.parametrize("per_ack", [1, 2])
def test_window_follows_the_cubic_function_concave_then_convex(per_ack: int) -> None:
    """A large window on a long path (the Reno estimate stays far below): cwnd tracks
    W_cubic(t) = C (t - K)^3 + W_max, rising fast, flattening at W_max around K, then
    accelerating past it; delayed ACKs (stretch ACKs) do not change the curve."""
    cc, _, trace = run_after_loss(1000, 0.1, 16, per_ack)
    k = cc.k
    epoch = cc.epoch
    assert epoch is not None
    for now, cwnd in trace:
        t = now - epoch
        assert abs(cwnd - cc.w_cubic(t)) <= 2 + 0.01 * cwnd, (t, cwnd, cc.w_cubic(t))

    def at(t: float) -> float:
        return min(trace, key=lambda p: abs(p[0] - epoch - t))[1]

    assert at(k) == pytest.approx(1000, abs=2)  # the plateau
    assert at(1) - at(0.1) > 40  # concave: fast far below W_max ...
    assert at(k + 0.5) - at(k - 0.5) < 2  # ... flat around it ...
    assert at(k + 6) - at(k + 5) > at(k + 2) - at(k + 1) > 0  # ... convex beyond
    assert at(k + 6) == pytest.approx(1000 + C * 6**3, rel=0.02)


def test_growth_never_exceeds_one_and_a_half_windows_per_rtt() -> None:
    cc = Cubic()
    path = Path(100, 0.1)
    path.loss(cc)
    path.rtts(cc, 1)
    cc.epoch = path.now - 60  # far into the convex region: W_cubic(t + RTT) is huge
    before = path.segments
    path.rtts(cc, 1)
    assert before < path.segments <= 1.5 * before + 1


def test_reno_friendly_region_on_a_short_path() -> None:
    """Small window, 10 ms RTT: Reno's AIMD would grow faster than the cubic function, and
    CUBIC follows its estimate W_est: alpha = 3 (1 - beta) / (1 + beta) segments per RTT
    until the window before the loss, then 1 per RTT (RFC 9438 §4.3)."""
    cc = Cubic()
    path = Path(20, 0.01)
    path.loss(cc)  # cwnd 14, W_max 20, K = 2.47 s
    alpha = 3 * (1 - BETA) / (1 + BETA)
    path.rtts(cc, 1)
    start = path.segments
    path.rtts(cc, 10)
    assert (path.segments - start) / 10 == pytest.approx(alpha, rel=0.1)
    epoch = cc.epoch
    assert epoch is not None
    assert path.segments > cc.w_cubic(path.now - epoch) + 3
    while path.segments < 21:
        path.rtts(cc, 1)
    start = path.segments
    path.rtts(cc, 20)
    assert (path.segments - start) / 20 == pytest.approx(1.0, rel=0.1)
    assert path.segments > cc.w_cubic(path.now - epoch) + 10


def test_fast_convergence_releases_bandwidth_to_a_newcomer() -> None:
    """A loss below the previous W_max (the flow's share is shrinking) lowers W_max to
    cwnd (1 + beta) / 2, so the flow plateaus earlier (RFC 9438 §4.7); without fast
    convergence W_max is the window at the loss."""
    for fast, expected in ((True, 80 * (1 + BETA) / 2), (False, 80)):
        cc = Cubic(fast_convergence=fast)
        path = Path(100, 0.1)
        path.loss(cc)
        assert cc.w_max == 100
        path.cwnd = 80 * MSS
        path.loss(cc)
        assert cc.w_max == pytest.approx(expected)
        assert path.ssthresh == int(80 * MSS * BETA)
        path.rtts(cc, 1)
        assert cc.k == pytest.approx(((expected - 56) / C) ** (1 / 3))


def test_timeout_restarts_from_one_segment_and_grows_from_k_zero() -> None:
    """RFC 9438 §4.8: ssthresh = beta * flight, cwnd = 1 segment, slow start, and the first
    congestion avoidance stage starts at its own window with K = 0."""
    cc = Cubic()
    path = Path(100, 0.1)
    cc.on_timeout(path, 100 * MSS, True, 0.0)
    assert path.cwnd == MSS and path.ssthresh == 70 * MSS
    path.rtts(cc, 8)  # slow start doubles to ssthresh
    assert path.segments >= 70
    assert cc.k == 0 and cc.w_max == pytest.approx(cc.cwnd_epoch)
    assert cc.w_max == pytest.approx(70, abs=2)
    assert cc.w_est >= cc.cwnd_epoch
    # a second expiry in a row leaves ssthresh alone
    cc.on_timeout(path, 50 * MSS, False, path.now)
    assert path.ssthresh == 70 * MSS and path.cwnd == MSS


def test_undo_restores_the_state_before_a_spurious_reduction() -> None:
    cc, path, _ = run_after_loss(1000, 0.1, 3)
    state = (cc.w_max, cc.k, cc.epoch, cc.w_est, cc.cwnd_prior)
    cwnd, ssthresh = path.cwnd, path.ssthresh
    path.prior_cwnd, path.prior_ssthresh = cwnd, ssthresh
    cc.on_loss(path, cwnd, path.now)  # spurious: reordering, say
    assert cc.w_max < state[0] and cc.epoch is None
    cc.on_undo(path, path.now)
    assert (cc.w_max, cc.k, cc.epoch, cc.w_est, cc.cwnd_prior) == state
    assert (path.cwnd, path.ssthresh) == (cwnd, ssthresh)


def test_application_limited_time_does_not_count() -> None:
    """While the sender keeps less than cwnd in flight, cwnd stays, and t stops: afterwards
    the window continues from where it was (RFC 9438 §5.8)."""
    cc, path, _ = run_after_loss(1000, 0.1, 2)
    epoch = cc.epoch
    cwnd = path.cwnd
    path.rtts(cc, 30, in_flight=200 * MSS)  # 3 s limited by the application
    assert path.cwnd == cwnd
    assert cc.epoch is not None and epoch is not None
    assert cc.epoch - epoch == pytest.approx(3.0, abs=0.11)
    # the same after an idle period: nothing in flight, then a restart
    epoch = cc.epoch
    path.now += 5.0
    cc.on_tx_start(path, path.now)
    assert cc.epoch - epoch == pytest.approx(5.0, abs=0.11)
    path.rtts(cc, 1)
    assert cwnd < path.cwnd < cwnd + 20 * MSS


def test_slow_start_does_not_grow_a_window_the_sender_does_not_use() -> None:
    cc = Cubic()
    path = Path(10, 0.1)
    path.rtts(cc, 3, in_flight=3 * MSS)
    assert path.segments == 10
    path.rtts(cc, 3)
    assert path.segments == 80


def test_ssthresh_never_below_two_segments() -> None:
    cc = Cubic()
    path = Path(2, 0.1)
    cc.on_loss(path, MSS, 0.0)
    assert path.ssthresh == 2 * MSS


def test_congestion_control_is_chosen_by_tcp_config() -> None:
    assert algorithm("cubic") is Cubic and algorithm("newreno") is NewReno
    with pytest.raises(ValueError, match="bbr"):
        TcpEngine(TcpConfig(congestion="bbr"), bytes)
    for name, cls in (("newreno", NewReno), ("cubic", Cubic)):
        engine = TcpEngine(TcpConfig(congestion=name), lambda n: bytes(n))
        a = engine.connect(b"\1\1\1\1", 1000, b"\2\2\2\2", 80, 0.0)
        b = engine.connect(b"\1\1\1\1", 1001, b"\2\2\2\2", 80, 0.0)
        assert type(a.cc) is cls and a.cc is not b.cc  # one controller per connection
    assert TcpConfig().congestion == "newreno"


def test_the_engine_asks_its_controller_at_each_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same lossy transfer with each controller: every fast recovery takes its
    ssthresh from the controller, 0.7 of the flight with CUBIC, half with NewReno; both
    transfers complete."""
    ratios: dict[str, list[float]] = {}
    for cls in (NewReno, Cubic):
        def recording(self: NewReno | Cubic, conn: Controlled, flight: int, now: float,
                      original=cls.on_loss) -> None:
            original(self, conn, flight, now)
            if flight >= 10 * conn.snd_mss:
                ratios.setdefault(self.name, []).append(conn.ssthresh / flight)
        monkeypatch.setattr(cls, "on_loss", recording)
    for name in ("newreno", "cubic"):
        sim = request_reply(3, 1 << 20, loss=0.02, delay=0.02, jitter=0.0, buffer=1 << 20,
                            congestion=name, limit=600)
        assert sim.a.counters.get("fast_retransmits", 0) >= 1
    assert ratios["newreno"] and ratios["cubic"]
    assert all(r == pytest.approx(0.5, abs=0.001) for r in ratios["newreno"])
    assert all(r == pytest.approx(BETA, abs=0.001) for r in ratios["cubic"])
