"""The fata command's own behaviour: one-line errors, version, bench discovery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliance_util import free_port

REPO = Path(__file__).resolve().parents[2]


def fata(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fata", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_version_and_help() -> None:
    assert fata("--version").stdout.strip().startswith("fata ")
    out = fata("--help").stdout
    for command in ("build", "run", "inspect", "verify", "new", "publish", "pull", "keygen", "bench"):
        assert command in out


def test_bench_without_name_lists_harnesses() -> None:
    done = fata("bench")
    assert done.returncode == 2
    assert "harnesses: dns" in done.stderr and "tls" in done.stderr
    done = fata("bench", "no-such-harness")
    assert done.returncode == 2 and "no benchmark harness named 'no-such-harness'" in done.stderr


def test_run_missing_target_is_one_line(tmp_path: Path) -> None:
    done = fata("run", str(tmp_path / "nothing"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"fata: {tmp_path / 'nothing'}: no such image or appliance directory"


def test_run_image_with_other_net_is_refused(tmp_path: Path) -> None:
    built = fata("build", "appliances/dns", "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    image = built.stdout.strip().splitlines()[-1]
    done = fata("run", image, "--net", "direct")
    assert done.returncode == 2
    assert "was built with --net socket" in done.stderr and "Traceback" not in done.stderr


def test_loop_key_decides_what_the_image_holds_and_runs(tmp_path: Path) -> None:
    import json
    import signal
    import time
    import zipfile

    images = {}
    for loop in ("asyncio", "uvloop"):
        built = fata("build", "appliances/dns", "--key", f"loop={loop}", "--out", str(tmp_path / loop))
        assert built.returncode == 0, built.stderr
        images[loop] = built.stdout.strip().splitlines()[-1]
        with zipfile.ZipFile(images[loop]) as archive:
            files = {e["path"] for e in json.loads(archive.read("MANIFEST.json"))["files"]}
        assert any("/uvloop/" in f for f in files) == (loop == "uvloop")
    port = free_port()  # free for TCP too: the DNS appliance listens on both
    proc = subprocess.Popen([sys.executable, "-m", "fata", "run", images["uvloop"], "--", "--port",
                             str(port)], stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "serving" in line or not line:
                break
        assert any("loop=uvloop" in line for line in lines), lines
        assert "serving" in lines[-1], lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_run_help_with_target_shows_platform_options() -> None:
    done = fata("run", "appliances/dns", "--net", "direct", "--help")
    assert done.returncode == 0, done.stderr
    assert "--netif NAME" in done.stdout and "--log-level" in done.stdout
    assert "usage: fata run" in done.stdout
