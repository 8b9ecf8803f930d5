"""The running appliance against os-ken's switch tester, the field's OpenFlow 1.3
conformance suite (``os_ken/tests/switch/of13``: 144 files, 991 cases).

``appliances/openflow_switch/bench/switch_tester.py`` wires the tester's network (the
appliance as target switch, datapath id 1; Open vSwitch's userspace datapath as the tester
switch, datapath id 2; veths joining ports 1-1, 2-2, 3-3) and runs os-ken's tester app; its
JSON holds the tester's summary and one verdict per case.

The match and action groups (940 cases) run twice in a row here: each run passes at least
95% of the cases, both fail the same ones, and both pass more than Open vSwitch 3.1 does as
the target on the same wiring (its baseline below, measured with ``--target ovs``).  The
group and meter groups send 30 s of traffic per case (about 26 minutes), so they run only
with ``FATA_OFTEST_LONG=1``.  The cases Fata fails are os-ken's: its SCTP checksum is
computed over the text of the bytes (``str(data)``), so the expected egress frames of the
16 SCTP set-field cases carry a wrong CRC32c, and the switch sends the right one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("os_ken", reason="needs os-ken, the tester: pip install -e "
                    "'appliances/openflow_switch[test]'", exc_type=ImportError)

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.tool("ip", "ethtool", "ss", "ovs-vswitchd", "ovsdb-server")]
REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "appliances" / "openflow_switch" / "bench" / "switch_tester.py"
# Open vSwitch 3.1.0 (Debian 12), netdev datapath, as the target on this wiring:
# ``python appliances/openflow_switch/bench/switch_tester.py --target ovs --groups
# match,action`` passed this many of the 940 cases (2026-12-04; 505 errors, 596 s).
OVS_BASELINE_MATCH_ACTION = 435
SCTP_SET_FIELD = ("set_field: 17_SCTP_SRC", "set_field: 18_SCTP_DST")


def run_tester(tmp: Path, groups: str) -> dict:
    out = tmp / f"tester-{groups}.json"
    done = subprocess.run([sys.executable, str(RUNNER), "--groups", groups, "--out", str(out)],
                          capture_output=True, text=True, timeout=3 * 3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def failed(result: dict) -> set[tuple[str, str]]:
    return {(c["file"], c["case"]) for c in result["cases"] if c["result"] != "OK"}


def test_match_and_action_pass_twice_alike_and_beat_open_vswitch(tmp_path: Path) -> None:
    runs = [run_tester(tmp_path, "match,action") for _ in range(2)]
    for result in runs:
        summary = result["summary"]
        assert result["cases_in_files"] == 940
        assert summary["ok"] + summary["error"] == 940 == len(result["cases"])
        assert summary["ok"] >= 0.95 * 940, failed(result)
        assert summary["ok"] > OVS_BASELINE_MATCH_ACTION
        # What fails is os-ken's SCTP checksum and nothing else.
        assert all(f.startswith("action: ") and any(s in f for s in SCTP_SET_FIELD)
                   for f, _ in failed(result)), failed(result)
    assert failed(runs[0]) == failed(runs[1])


@pytest.mark.skipif(not os.environ.get("FATA_OFTEST_LONG"),
                    reason="the group and meter cases send 30 s of traffic each (about 26 "
                           "min): FATA_OFTEST_LONG=1 runs them")
def test_group_and_meter_cases(tmp_path: Path) -> None:
    result = run_tester(tmp_path, "group,meter")
    summary = result["summary"]
    assert result["cases_in_files"] == 51
    assert summary["ok"] + summary["error"] == 51
    assert summary["ok"] >= 0.95 * 51, failed(result)
