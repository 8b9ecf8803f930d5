"""Installing missing Debian packages (bind9, nsd, knot, dnsperf) when we are root.

The benchmark is only meaningful with the real competitors, so the harness installs them
when it can; when it cannot (not root, no apt-get, no network), it says so and the server
is reported as missing instead of silently dropped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from .options import Settings
from .peers import Server


def can_install() -> str | None:
    """Why packages cannot be installed here, or ``None`` if they can."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("apt-get") is None:
        return "no apt-get"
    return None


def apt_install(packages: Iterable[str], log: list[str]) -> bool:
    """``apt-get install -y --no-install-recommends`` the packages; refresh lists and retry
    once if the first attempt fails (a fresh machine has no package lists yet).

    Progress and failures are appended to ``log``; returns whether apt-get succeeded.
    """
    wanted = sorted(set(packages))
    if not wanted:
        return True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *wanted]
    for attempt in range(2):
        if attempt == 1:
            log.append("apt-get update")
            subprocess.run(
                ["apt-get", "update"],
                check=False,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        log.append(" ".join(install))
        try:
            done = subprocess.run(
                install, check=False, env=env, capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired:
            log.append("apt-get install timed out")
            continue
        if done.returncode == 0:
            return True
        log.append("apt-get failed: " + " ".join(done.stderr.strip().splitlines()[-2:]))
    return False


def ensure_installed(servers: Sequence[Server], cfg: Settings, log: list[str]) -> None:
    """apt-get install the peers and dnsperf that are missing, when allowed and possible."""
    packages = {s.package for s in servers if s.package and s.missing() is not None}
    if shutil.which("dnsperf") is None:
        packages.add("dnsperf")
    wanted = sorted(packages)
    if not wanted:
        return
    if not cfg.install:
        log.append(f"not installing {', '.join(wanted)} (--no-install)")
        return
    why_not = can_install()
    if why_not is not None:
        log.append(f"cannot install {', '.join(wanted)}: {why_not}")
        return
    print(f"installing {', '.join(wanted)} ...", flush=True)
    apt_install(wanted, log)
