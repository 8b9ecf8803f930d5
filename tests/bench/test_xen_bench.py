"""``fata bench xen --quick`` end to end: the network and block paths run beside their
direct peers, the harness reports each ratio against its target and writes its JSON (the
speed is the harness's business)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
    pytest.mark.tool("ip", "dnsperf"),
]


def test_xen_bench_quick_measures_both_paths(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fata", "bench", "xen", "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "xen-bench.json").read_text())
    rows = {row["measure"]: row for row in report["rows"]}
    assert set(rows) == {"dns qps", "block read MB/s qd1", "block write MB/s qd1"}
    for row in rows.values():
        assert row["direct"] > 0 and row["netfront"] > 0
        assert row["ratio"] == pytest.approx(row["netfront"] / row["direct"])
    assert sorted(t["name"] for t in report["targets"]) == [
        "block read MB/s qd1: blkfront / direct file I/O",
        "block write MB/s qd1: blkfront / direct file I/O", "dns qps: netfront / direct TAP"]
    assert "netfront / direct TAP: >= 0.8" in done.stdout
    assert "blkfront / direct file I/O: >= 0.5" in done.stdout
