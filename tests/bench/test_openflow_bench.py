"""``fata bench openflow_switch --quick`` end to end: Fata's switch, Open vSwitch and a
Linux bridge each forward 64- and 1518-byte UDP frames between two host namespaces, and the
JSON holds Fata's and the bridge's rates and either Open vSwitch's (and the ratio) or the
reason it did not run; and the controller role
and os-ken's learning switch each answer cbench.py's fake switches in both modes, with the
ratio of the batch rates (the speed is the harness's business)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.tool("ip"),
]


def test_openflow_bench_quick_measures_fata_beside_ovs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fata", "bench", "openflow_switch", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "openflow-switch-bench.json").read_text())
    assert report["config"]["rounds"] == 1 and report["config"]["duration_s"] == 2.0
    rows = report["results"]
    assert [(r["server"].split()[0], r["frame_bytes"]) for r in rows] == [
        ("Fata", 64), ("Fata", 1518), ("Open", 64), ("Open", 1518), ("Linux", 64),
        ("Linux", 1518)], rows
    fata, ovs, bridge = rows[0], rows[2], rows[4]
    for row in (*rows[:2], *rows[4:]):
        assert row["status"] == "ok" and row["frames_per_s"] > 0 and row["offered_per_s"] > 0
    assert ovs["server"].startswith("Open vSwitch")
    if ovs["status"] == "ok":
        assert rows[3]["frames_per_s"] > 0
        assert ovs["datapath"] in ("kernel (system), explicit flows",
                                   "userspace (netdev), explicit flows")
        assert report["ratio_fata_over_ovs"] == pytest.approx(
            fata["frames_per_s"] / ovs["frames_per_s"])
    else:
        assert ovs["status"].startswith("not run: ") and len(ovs["status"]) > len("not run: ")
        assert report["ratio_fata_over_ovs"] is None
    assert bridge["datapath"] == "kernel, learning"
    assert "Fata / Open vSwitch forwarded frames/s at 64 bytes:" in done.stdout
    controllers = report["controller_results"]
    assert [(r["controller"], r["mode"]) for r in controllers] == [
        ("os-ken simple_switch", "batch"), ("os-ken simple_switch", "single"),
        ("Fata controller", "batch"), ("Fata controller", "single")], controllers
    for row in controllers:
        assert row["status"] == "ok" and row["responses_per_s"] > 0 and row["version"] == 1
        assert row["flow_mods"] > row["packet_outs"] > 0  # learned: flows, not floods
    batch = {r["controller"]: r["responses_per_s"] for r in controllers if r["mode"] == "batch"}
    assert report["controller_ratio_fata_over_osken"] == pytest.approx(
        batch["Fata controller"] / batch["os-ken simple_switch"])
    assert "Fata / os-ken controller responses/s (batch):" in done.stdout
    for png in ("openflow-switch-forwarding.png", "openflow-controller.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {tmp_path / png}" in done.stdout
