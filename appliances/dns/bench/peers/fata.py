"""The Fata DNS appliance, through the project's CLI in socket mode with one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .base import FloodSetup, Launch, Server


class Fata(Server):
    key = "fata"
    label = "Fata"
    binary = "python"
    package = None
    startup_timeout = 30.0

    def __init__(self, repo: Path, appliance: Path | None = None, python: str | None = None):
        """``appliance`` is what ``fata run`` is given: the appliance directory (default
        ``appliances/dns``) or a built image; ``python`` the interpreter (default: ours)."""
        self.repo = repo
        self.appliance = appliance if appliance is not None else repo / "appliances" / "dns"
        self.python = python or sys.executable

    def env(self) -> dict[str, str]:
        """Our environment, with the source tree importable even before ``pip install -e``."""
        env = dict(os.environ)
        paths = [str(self.repo / "core"), str(self.repo / "appliances" / "dns")]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def missing(self) -> str | None:
        if not self.appliance.exists():
            return f"{self.appliance} does not exist"
        probe = (
            "import importlib.util, sys; "
            "sys.exit(importlib.util.find_spec('fata.__main__') is None)"
        )
        done = subprocess.run(
            [self.python, "-c", probe],
            check=False,
            env=self.env(),
            cwd=self.repo,
            capture_output=True,
        )
        if done.returncode != 0:
            return "the fata CLI (python -m fata) is not importable"
        return None

    def version(self) -> str:
        done = subprocess.run(
            [self.python, "-c", "import fata; print(fata.__version__)"],
            check=False,
            env=self.env(),
            cwd=self.repo,
            capture_output=True,
            text=True,
        )
        version = done.stdout.strip() if done.returncode == 0 else "unknown"
        return f"fata {version} (socket mode, 1 process)"

    def prepare(self, workdir: Path, zone_file: Path, origin: str, port: int,
                flood: FloodSetup | None = None) -> Launch:
        """Build the image first (outside any timing), then run the sealed image: the start-up
        measured is that of `fata run IMAGE`, as a user would deploy it."""
        image = self.appliance
        if image.is_dir():
            done = subprocess.run(
                [self.python, "-m", "fata", "build", str(image), "--out", str(workdir)],
                check=False, env=self.env(), cwd=self.repo, capture_output=True, text=True,
            )  # fmt: skip
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                raise RuntimeError(f"fata build failed: {done.stderr.strip()[-500:]}")
            image = Path(lines[-1])
        argv = [
            self.python, "-m", "fata", "run", str(image),
            "--", "--zone", str(zone_file), "--listen", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        if flood is not None:
            argv += [
                "--zone", str(flood.zone_file), "--rrl", str(flood.rate),
                "--rrl-slip", str(flood.slip), "--rrl-window", str(flood.window),
                "--rrl-exempt", flood.exempt,
            ]  # fmt: skip
        return Launch(argv=argv, cwd=self.repo, env=self.env())
