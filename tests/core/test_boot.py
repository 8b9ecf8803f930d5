"""The runtime end to end in a real process: devices, start(), signals, trace, exit status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

APP = """\
from fata.config import Appliance, arg, clock, console, kv_ro, lifecycle, stack

appliance = Appliance(
    name="echo", version="0.0.1", entry="fata_echo.unikernel:start",
    devices={"stack": stack(), "data": kv_ro("data"), "clock": clock(), "console": console(),
             "lifecycle": lifecycle()},
    args=[arg("port", type=int, default=0), arg("fail", type=bool, default=False)],
)
"""

UNIKERNEL = """\
async def start(*, stack, data, clock, console, lifecycle, args):
    if args.fail:
        raise RuntimeError("asked to fail")
    greeting = data.get("greeting.txt")
    reloads = []
    lifecycle.on_reload(lambda: reloads.append(1))

    def handler(payload, peer):
        if payload == b"reloads":
            return str(len(reloads)).encode()
        return greeting + payload

    endpoint = await stack.udp_listen("127.0.0.1", args.port, handler)
    console.info(f"listening on {endpoint.local[1]}")
    await lifecycle.wait_stopped()
"""

RUNNER = """\
import sys, pathlib
from fata.config import load
from fata.runtime.boot import run_baked
app = load(sys.argv[1])
raise SystemExit(run_baked(app.bake({}), sys.argv[3:], root=pathlib.Path(sys.argv[2])))
"""


@pytest.fixture
def appliance(tmp_path: Path) -> tuple[Path, Path]:
    app = tmp_path / "echo"
    (app / "fata_echo").mkdir(parents=True)
    (app / "data").mkdir()
    (app / "config.py").write_text(APP)
    (app / "fata_echo" / "__init__.py").write_text("")
    (app / "fata_echo" / "unikernel.py").write_text(textwrap.dedent(UNIKERNEL))
    (app / "data" / "greeting.txt").write_text("hello ")
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "data").symlink_to(app / "data")
    return app, root


def launch(appliance: tuple[Path, Path], *args: str) -> subprocess.Popen[str]:
    app, root = appliance
    env = dict(os.environ, PYTHONPATH=f"{app}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(app), str(root), *args],
                            stderr=subprocess.PIPE, text=True, env=env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, payload: bytes, deadline: float = 10.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            s.sendto(payload, ("127.0.0.1", port))
            try:
                return s.recv(1000)
            except (TimeoutError, ConnectionRefusedError):
                continue
    raise AssertionError("no answer")


def test_serves_reloads_and_stops_gracefully(appliance: tuple[Path, Path], tmp_path: Path) -> None:
    port = free_port()
    trace_file = tmp_path / "trace.json"
    proc = launch(appliance, "--trace", str(trace_file), "--", "--port", str(port))
    try:
        assert ask(port, b"world") == b"hello world"
        assert ask(port, b"reloads") == b"0"
        proc.send_signal(signal.SIGHUP)
        # the reload hook runs when the signal is handled: ask until it has run, once
        deadline = time.monotonic() + 10
        while (count := ask(port, b"reloads")) == b"0":
            assert time.monotonic() < deadline, "SIGHUP never reached the reload hook"
            time.sleep(0.05)
        assert count == b"1"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stop requested" in err and "echo stopped" in err
    events = json.loads(trace_file.read_text())["traceEvents"]
    assert any(e["cat"] == "udp" and e["ph"] == "X" for e in events)
    assert any(e["cat"] == "task" and e["name"].endswith("start") for e in events)


def test_start_failure_is_one_line_and_exit_1(appliance: tuple[Path, Path]) -> None:
    proc = launch(appliance, "--", "--fail")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "RuntimeError: asked to fail" in err
    assert "Traceback" not in err


def test_bad_argument_is_a_usage_error(appliance: tuple[Path, Path]) -> None:
    proc = launch(appliance, "--", "--port", "many")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "invalid int value: 'many'" in err and "Traceback" not in err
