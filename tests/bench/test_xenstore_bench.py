"""``fata bench xenstore --quick`` end to end: the daemon under load, every row measured
and the JSON record written (about 10 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_measures_every_operation(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fata", "bench", "xenstore", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads((tmp_path / "xenstore-bench.json").read_text())["results"]
    fata = {(r["op"], r["clients"]): r for r in rows if r["server"] == "Fata"}
    for op in ("read", "write", "directory", "tx10"):
        for clients in (1, 16):
            assert fata[(op, clients)]["ops_per_s"] > 0, (op, clients)
    assert 0 < fata[("watch", 2)]["latency_ms"] < 1000
    others = [r for r in rows if r["server"] != "Fata"]
    assert others and all(r["status"].startswith("not run: ") for r in others)


def test_bad_options_exit_2() -> None:
    done = subprocess.run([sys.executable, "-m", "fata", "bench", "xenstore", "--duration",
                           "0"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and "--duration" in done.stderr
