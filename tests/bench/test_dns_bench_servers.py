"""The DNS benchmark's process control and server launchers, with real processes and peers."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

needs_taskset = pytest.mark.tool("taskset")


def _cores(bench: SimpleNamespace) -> tuple[int, int]:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs two cores")
    return allowed[-1], bench.process.other_cores(allowed[-1])[0]


@needs_taskset
def test_start_pins_and_stop_ends_the_whole_group(bench: SimpleNamespace, tmp_path) -> None:
    process = bench.process
    core, _ = _cores(bench)
    # The shell forks a background child: stop() must end both, as NSD's children.
    running = process.start(
        "sleeper", ["sh", "-c", "sleep 60 & sleep 60; wait"], core=core, log_path=tmp_path / "log"
    )
    try:
        deadline = time.monotonic() + 5
        while len(process.group_members(running.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        members = process.group_members(running.pid)
        assert len(members) == 3, members
        assert all(os.sched_getaffinity(pid) == {core} for pid in members)
        assert set(process.process_tree(running.pid)) == set(members)
        mem = process.memory(running.pid)
        assert mem.processes == 3 and mem.rss_mb > 0 and mem.pss_mb > 0
    finally:
        process.stop(running, grace=2)
    assert process.group_members(running.pid) == []
    assert running.proc.returncode is not None


@needs_taskset
def test_wait_ready_reports_an_early_exit_with_its_output(bench: SimpleNamespace, tmp_path) -> None:
    process = bench.process
    core, _ = _cores(bench)
    running = process.start(
        "crasher", ["sh", "-c", "echo zone failed to load; exit 3"], core=core,
        log_path=tmp_path / "log",
    )  # fmt: skip
    with pytest.raises(process.StartError, match=r"status 3(.|\n)*zone failed to load"):
        process.wait_ready(running, lambda: False, timeout=10)
    process.stop(running)


@needs_taskset
def test_wait_ready_gives_up_at_the_timeout(bench: SimpleNamespace, tmp_path) -> None:
    process = bench.process
    core, _ = _cores(bench)
    running = process.start("mute", ["sleep", "30"], core=core, log_path=tmp_path / "log")
    try:
        with pytest.raises(process.StartError, match="did not answer within"):
            process.wait_ready(running, lambda: False, timeout=0.2)
    finally:
        process.stop(running)


def test_free_port_is_free_for_udp_and_tcp(bench: SimpleNamespace) -> None:
    import socket

    port = bench.process.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", port))


# -- each peer's configuration, judged by the peer's own checker ----------------------------

CHECKERS = {
    "bind": ("named-checkconf", lambda conf: ["named-checkconf", "-z", str(conf)]),
    "nsd": ("nsd-checkconf", lambda conf: ["nsd-checkconf", str(conf)]),
    "knot": ("knotc", lambda conf: ["knotc", "-c", str(conf), "conf-check"]),
}


@pytest.mark.parametrize("flooded", [False, True], ids=["plain", "rrl"])
@pytest.mark.parametrize("key", [pytest.param(key, marks=pytest.mark.tool(tool), id=key)
                                 for key, (tool, _argv) in sorted(CHECKERS.items())])
def test_peer_configuration_passes_the_peers_own_checker(
    bench: SimpleNamespace, key: str, flooded: bool, tmp_path
) -> None:
    """Each peer's configuration, plain and with the flood run's second zone and rate
    limiting, is accepted by the peer's own checker (which knows every option)."""
    _tool, argv = CHECKERS[key]
    zone = bench.zones.generate_zone(10)
    zone_file = zone.write(tmp_path / "zone.db")
    setup = None
    if flooded:
        setup = bench.peers.base.FloodSetup(bench.zones.flood_zone().write(tmp_path / "f.db"),
                                            bench.zones.FLOOD_ORIGIN)
    server = bench.peers.PEERS[key]()
    launch = server.prepare(tmp_path, zone_file, zone.origin, bench.process.free_port(),
                            flood=setup)
    conf = next(p for p in tmp_path.iterdir() if p.suffix == ".conf")
    done = subprocess.run(argv(conf), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(conf) in launch.argv
    text = conf.read_text()
    assert (bench.zones.FLOOD_ORIGIN.rstrip(".") in text) == flooded
    assert any(word in text for word in ("rate-limit", "rrl-ratelimit: 5")) == flooded


def _installed_peer(bench: SimpleNamespace):
    """BIND, the real peer these tests run (they carry ``tool("named")``)."""
    server = bench.peers.PEERS["bind"]()
    assert server.missing() is None, server.missing()
    return "bind", server


@needs_taskset
@pytest.mark.tool("named")
def test_check_flags_a_server_serving_different_data(bench: SimpleNamespace, tmp_path) -> None:
    """A real peer serving a zone other than the expected one fails the check, and the same
    peer serving the right zone passes: the check can tell."""
    zones, check, process = bench.zones, bench.check, bench.process
    key, server = _installed_peer(bench)
    core, _ = _cores(bench)
    expected = zones.generate_zone(50)
    sample = check.sample_queries(expected, zones.generate_queries(expected), 20)
    for seed, should_pass in ((1, True), (2, False)):
        served = zones.generate_zone(50, seed=seed)
        workdir = tmp_path / f"seed{seed}"
        workdir.mkdir()
        port = process.free_port()
        launch = server.prepare(workdir, served.write(workdir / "z.db"), served.origin, port)
        running = process.start(
            key, launch.argv, core=core, log_path=workdir / "log", cwd=launch.cwd, env=launch.env
        )
        try:
            first = process.wait_ready(
                running, lambda p=port, o=served.origin: check.probe("127.0.0.1", p, o), 30
            )
            assert 0 < first < 30
            result = check.check_server("127.0.0.1", port, expected, sample)
        finally:
            process.stop(running)
        assert result.ok is should_pass, (key, seed, result.failures)
        if not should_pass:
            assert any("rcode NXDOMAIN, expected NOERROR" in f for f in result.failures)


def _case(bench: SimpleNamespace, tmp_path, size: int = 50):
    zones, check = bench.zones, bench.check
    zone = zones.generate_zone(size)
    queries = zones.generate_queries(zone, count=2000)
    return bench.runner.Case(
        zone=zone,
        zone_file=zone.write(tmp_path / "zone.db"),
        queries=queries,
        query_file=zones.write_queries(queries, tmp_path / "queries.txt"),
        sample=check.sample_queries(zone, queries, 20),
    )


def _settings(bench: SimpleNamespace, core: int, duration: float):
    options = bench.options
    args = ["--quick", "--duration", str(duration), "--core", str(core), "--no-install"]
    return options.settings(options.parser().parse_args(args))


@pytest.mark.tool("taskset", "dnsperf", "named")
def test_measure_flags_a_real_server_serving_other_data(bench: SimpleNamespace, tmp_path) -> None:
    """A real peer given a different zone: wrong before the load and wrong under it."""
    key, server = _installed_peer(bench)
    core, _ = _cores(bench)
    zones = bench.zones

    class OtherData(type(server)):
        def prepare(self, workdir, zone_file, origin, port, flood=None):
            other = zones.generate_zone(50, seed=2).write(workdir / "other.db")
            return super().prepare(workdir, other, origin, port, flood)

    case = _case(bench, tmp_path)
    row = bench.runner.measure(OtherData(), None, case, _settings(bench, core, 1), tmp_path / "run")
    assert row.status == "WRONG ANSWERS" and row.correct is False, (key, row)
    assert row.qps is not None and row.qps > 0
    assert any("rcode NXDOMAIN, expected NOERROR" in p for p in row.problems)
    assert any(p.startswith("under load") and "NXDOMAIN answers" in p for p in row.problems)


@pytest.mark.tool("taskset", "dnsperf", "named")
def test_measure_reports_a_server_that_dies_under_load(bench: SimpleNamespace, tmp_path) -> None:
    key, server = _installed_peer(bench)
    core, _ = _cores(bench)

    class Dies(type(server)):
        def prepare(self, workdir, zone_file, origin, port, flood=None):
            launch = super().prepare(workdir, zone_file, origin, port, flood)
            return replace(launch, argv=["timeout", "-s", "KILL", "1.5", *launch.argv])

    case = _case(bench, tmp_path)
    row = bench.runner.measure(Dies(), None, case, _settings(bench, core, 3), tmp_path / "run")
    assert row.status == "exited under load", (key, row)
    assert row.qps is None
    assert _processes_mentioning(str(tmp_path)) == []  # the server is gone, children too


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found
