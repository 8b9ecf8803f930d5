"""``fata bench net --quick`` end to end: the harness runs, measures every row and writes
its JSON (how fast is the harness's business, not this test's)."""

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
                       reason="needs /dev/net/tun (a container without the TUN device)"),
    pytest.mark.tool("ip", "dnsperf"),
]


def test_net_bench_quick_measures_every_row(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fata", "bench", "net", "--quick", "--bytes", str(8 << 20),
         "--dns-seconds", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "net.json").read_text())
    rows = {row["test"]: row for row in report["rows"]}
    assert len(rows) == 4
    for row in rows.values():
        assert row["fata"] > 0 and row["linux"] > 0 and row["ratio"] > 0, row
    assert {t["name"] for t in report["targets"]} >= {"TCP up >= 1 Gbit/s", "DNS direct/socket >= 0.5"}
    assert "DNS direct/socket >= 0.5" in done.stdout
