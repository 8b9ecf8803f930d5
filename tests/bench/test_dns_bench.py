"""``fata bench dns --quick`` end to end: Fata and every peer, real dnsperf load.

Runs the harness as ``fata bench dns`` does (file loaded, ``main`` called) against BIND9, NSD
and Knot, and checks the record it leaves: a JSON row per server with
a positive qps and correct answers, and the PNG chart. About 15 s with all three peers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

PEER_BINARIES = {"bind": "named", "nsd": "nsd", "knot": "knotd"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.tool("dnsperf", "taskset"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores"),
]


def _record(out: Path) -> dict:
    return json.loads((out / "dns-bench.json").read_text())


@pytest.mark.tool(*PEER_BINARIES.values())
def test_quick_run_measures_fata_and_every_peer(harness, tmp_path, capsys) -> None:
    peers = list(PEER_BINARIES)
    status = harness.main(
        ["--quick", "--against", ",".join(peers), "--out", str(tmp_path), "--no-install"]
    )
    printed = capsys.readouterr()
    record = _record(tmp_path)
    rows = {row["server"]: row for row in record["results"]}
    assert set(rows) == {"fata", *peers}
    for key, row in rows.items():
        assert row["size"] == 100, key
        assert row["qps"] is not None and row["qps"] > 0, (key, row["status"], row["problems"])
        assert row["correct"] is True, (key, row["problems"])
        assert row["checked"] > 0 and row["sent"] > 0, key
        assert row["rss_mb"] > 0 and 0 < row["first_answer_s"] < 60, key
        assert set(row["rcodes"]) == {"NOERROR", "NXDOMAIN"}, key
    assert record["config"]["sizes"] == [100] and record["config"]["duration_s"] == 2.0
    assert record["config"]["server_core"] != record["config"]["load_core"]
    assert (tmp_path / "dns-bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Fata" in (tmp_path / "dns-bench.txt").read_text()
    _check_flood_rows(record, {"fata", *peers})
    assert "spoofed flood" in (tmp_path / "dns-bench.txt").read_text()
    assert status == 0, printed.err


def _check_flood_rows(record: dict, servers: set[str]) -> None:
    """Every server ran the flood with its rate limiting on: the ordinary (exempt) queries
    were all answered correctly, and few of the flood's queries got a full answer (for Fata
    at most the rate's worth: 16 victim /24s at 5/s, plus one bucket each at the start), the
    rest slipped or dropped, so fewer bytes left than arrived."""
    flood = record["flood"]
    assert flood["rate_qps"] == 20_000 and flood["size"] == 100
    rows = {row["server"]: row for row in flood["results"]}
    assert set(rows) == servers
    for key, row in rows.items():
        assert row["correct"] is True and row["status"] == "ok", (key, row["problems"])
        assert row["qps"] > 0 and row["lost_pct"] < 1, (key, row)
        f = row["flood"]
        assert f["sent"] > 1000, key
        assert 0 < f["full"] < 0.05 * f["sent"], (key, f)
        if key == "fata":
            assert f["full"] <= 16 * (5 + 5 * f["send_seconds"]) + 16, f
        assert f["slipped"] > 0 and f["amplification"] < 1.0, (key, f)
        assert 0 < row["quiet_ratio"], key


def test_missing_peers_are_reported_as_missing(harness, tmp_path, monkeypatch) -> None:
    """With no peer on PATH (only dnsperf and taskset), each is a row saying it is missing,
    the chart still draws, and the run still measures Fata."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("dnsperf", "taskset"):
        (bindir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bindir))
    out = tmp_path / "out"
    harness.main(["--quick", "--duration", "1", "--out", str(out), "--no-install"])
    record = _record(out)
    rows = {row["server"]: row for row in record["results"]}
    assert set(rows) == {"fata", "bind", "nsd", "knot"}
    for key, package in (("bind", "bind9"), ("nsd", "nsd"), ("knot", "knot")):
        assert rows[key]["qps"] is None
        expected = f"missing: {PEER_BINARIES[key]} not installed (Debian package {package})"
        assert rows[key]["status"] == expected
    assert "missing: knotd not installed" in (out / "dns-bench.txt").read_text()
    assert record["install_log"] == ["not installing bind9, knot, nsd (--no-install)"]
    assert (out / "dns-bench.png").exists()
    assert rows["fata"]["qps"] is not None and rows["fata"]["qps"] > 0, rows["fata"]["problems"]


@pytest.mark.root  # --server-cpu needs a cgroup
def test_server_cpu_caps_the_server(harness, tmp_path) -> None:
    """With --server-cpu the server is held to that share of its core, and the run says so."""
    out = tmp_path / "out"
    status = harness.main(["--quick", "--duration", "2", "--against", "", "--server-cpu", "25",
                           "--out", str(out), "--no-install"])
    record = _record(out)
    (row,) = record["results"]
    if row["status"] == "no CPU cap":
        pytest.skip(f"no cgroup CPU controller here: {row['problems']}")
    assert status == 0, row["problems"]
    assert record["config"]["server_cpu_pct"] == 25
    assert row["qps"] > 0 and row["correct"] is True
    assert row["server_cpu_pct"] < 40, row  # uncapped, the server's core is ~100% busy
    assert "capped at 25% of it" in (out / "dns-bench.txt").read_text()
    assert not [p for p in Path("/sys/fs/cgroup/cpu").glob("fata-bench-*")]  # cleaned up
