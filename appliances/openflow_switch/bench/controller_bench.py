"""The controller half of ``fata bench openflow_switch``: responses per second of Fata's
controller role and of the same learning switch on os-ken, under cbench.py's fake switches.

Each controller listens on a loopback port, pinned to one CPU; cbench.py runs pinned to the
other, in batch mode (PACKET_INs as fast as the connection takes them, cbench's throughput
mode) and in single mode (one outstanding per switch, its latency mode).  os-ken
(``osken_simple_switch.py`` through ``osken_launch.py``) goes first: a generator that cannot
get answers from the field's framework measures nothing, so its row validates the
generator before Fata's is taken.  The ratio is Fata's batch rate over os-ken's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from ovs_daemons import BenchError, pin, stop, wait_until

HERE = Path(__file__).resolve().parent
APPLIANCE = HERE.parent
REPO = HERE.parents[2]
START_TIMEOUT = 120.0  # the first fata run builds the controller image
MODES = ("batch", "single")


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _start(argv: list[str], core: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                                start_new_session=True, preexec_fn=pin(core))


def controllers(port: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """How to start each controller on ``port``: argv and environment."""
    py = sys.executable
    fata_env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), str(APPLIANCE), os.environ.get("PYTHONPATH", "")]))
    osken_env = dict(os.environ, OSKEN_HUB_TYPE="eventlet", PYTHONWARNINGS="ignore")
    return {
        "os-ken simple_switch": ([py, str(HERE / "osken_launch.py"),
                                  str(HERE / "osken_simple_switch.py"), "--",
                                  "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port",
                                  str(port)], osken_env),
        "Fata controller": ([py, "-m", "fata", "run", "--key", "role=controller",
                             str(APPLIANCE), "--", "--port", str(port)], fata_env),
    }


def measure(name: str, argv: list[str], env: dict[str, str], port: int, tmp: Path,
            cores: tuple[int, int], seconds: float, rounds: int, version: int,
            switches: int) -> list[dict]:
    """One controller under both modes: a row per mode."""
    log = tmp / f"{name.split()[0].lower()}-controller.log"
    proc = _start(argv, cores[0], log, env)
    rows = []
    try:
        wait_until(lambda: _accepting(port), START_TIMEOUT, name, proc, log)
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, str(HERE / "cbench.py"), "--port", str(port), "--mode", mode,
                 "--version", str(version), "--switches", str(switches), "--seconds",
                 str(seconds), "--rounds", str(rounds), "--warmup", str(min(1.0, seconds))],
                capture_output=True, text=True, timeout=120 + rounds * seconds,
                preexec_fn=pin(cores[1]))
            if done.returncode != 0:
                raise BenchError(f"cbench.py against {name}: {done.stderr.strip()[-400:]}")
            result = json.loads(done.stdout)
            if not result["responses_per_s"] > 0:
                raise BenchError(f"{name} answered no PACKET_IN in {mode} mode")
            rows.append({"controller": name, **result, "status": "ok"})
    finally:
        stop(proc)
    return rows


def run(tmp: Path, cores: tuple[int, int], seconds: float, rounds: int, version: int = 1,
        switches: int = 16) -> list[dict]:
    """Every controller's rows (os-ken's first); a controller that failed gets a row
    saying why, and if os-ken's failed Fata's is not measured (nothing validated it)."""
    port = 21000 + os.getpid() % 20000
    rows: list[dict] = []
    for name, (argv, env) in controllers(port).items():
        if rows and rows[0]["status"] != "ok":
            rows.append({"controller": name, "status": "not run: the generator was not "
                                                        "validated against os-ken"})
            continue
        try:
            rows += measure(name, argv, env, port, tmp, cores, seconds, rounds, version,
                            switches)
        except BenchError as exc:
            rows.append({"controller": name, "status": f"failed: {exc}"})
    return rows
