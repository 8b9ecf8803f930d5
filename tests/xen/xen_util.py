"""What the Xen platform's end-to-end tests share: the Python to run the platform's
processes with, their environment (the core and the appliances they run, from this
checkout), and a child process started once its log says it is ready."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from appliance_util import PYTHON, ROOT, LoggedProcess, wait_until


def python() -> str:
    return str(PYTHON) if PYTHON.exists() else sys.executable


def env() -> dict[str, str]:
    paths = [str(ROOT / "core"), str(ROOT / "appliances" / "xenstore_stub"),
             str(ROOT / "appliances" / "dns")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


class Process(LoggedProcess):
    """A child logging to ``<tmp>/<name>.log``, returned once ``ready`` is in its log."""

    def __init__(self, tmp: Path, name: str, argv: list[str], ready: str,
                 pass_fds: tuple[int, ...] = (), extra_env: dict[str, str] | None = None
                 ) -> None:
        self.log = tmp / f"{name}.log"
        with self.log.open("w") as out:  # the child has its own descriptor of it
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         env=dict(env(), **(extra_env or {})), cwd=str(ROOT),
                                         pass_fds=pass_fds)
        wait_until(lambda: self._ready(ready), 90, f"{name} ready", self.output)

    def _ready(self, text: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited {self.proc.returncode}:\n{self.output()}")
        return text in self.output()

    def lines(self) -> list[dict[str, Any]]:
        """The JSON lines printed so far (a guest program's steps)."""
        return [json.loads(line) for line in self.output().splitlines()
                if line.startswith("{")]

    def step(self, name: str) -> dict[str, Any] | None:
        return next((line for line in self.lines() if line.get("step") == name), None)
