"""``fata bench openflow_switch --quick`` end to end: Fata's switch and Open vSwitch each
forward UDP frames between two host namespaces, and the JSON holds Fata's rate and either
Open vSwitch's rate (and the ratio) or the reason it did not run; and the controller role
and os-ken's learning switch each answer cbench.py's fake switches in both modes, with the
ratio of the batch rates (the speed is the harness's business)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"),
                       reason="needs /dev/net/tun (the switch's ports port3 and port4 are TAPs)"),
    pytest.mark.tool("ip"),
]


def test_openflow_bench_quick_measures_fata_beside_ovs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fata", "bench", "openflow_switch", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "openflow-switch-bench.json").read_text())
    assert report["config"]["rounds"] == 1 and report["config"]["duration_s"] == 2.0
    fata, ovs = report["results"]
    assert fata["server"].startswith("Fata") and fata["status"] == "ok"
    assert fata["frames_per_s"] > 0 and fata["offered_per_s"] > 0
    assert ovs["server"].startswith("Open vSwitch")
    if ovs["status"] == "ok":
        assert ovs["frames_per_s"] > 0
        assert ovs["datapath"] in ("kernel (system)", "userspace (netdev)")
        assert ovs["datapath"] in done.stdout
        assert report["ratio_fata_over_ovs"] == pytest.approx(
            fata["frames_per_s"] / ovs["frames_per_s"])
    else:
        assert ovs["status"].startswith("not run: ") and len(ovs["status"]) > len("not run: ")
        assert report["ratio_fata_over_ovs"] is None
    assert "Fata / Open vSwitch forwarded frames/s:" in done.stdout
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
