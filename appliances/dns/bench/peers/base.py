"""What every server launcher provides."""

from __future__ import annotations

import abc
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FloodSetup:
    """What the spoofed-flood run adds to a server: a second zone (the amplifier, queried by
    the flood) and response rate limiting with the same numbers everywhere, from which the
    ordinary client (``exempt``, dnsperf's address) is exempt."""

    zone_file: Path
    origin: str
    rate: int = 5
    """Answers per second per client /24 and answer (BIND ``responses-per-second``)."""
    slip: int = 2
    window: int = 15
    exempt: str = "127.0.0.1"


@dataclass(frozen=True)
class Launch:
    """How to start a prepared server: its argv (not yet pinned), directory, environment."""

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] | None = None


class Server(abc.ABC):
    """A DNS server the harness can configure, start and name in its report."""

    key: str
    """Short name used on the command line (``--against bind``) and in the JSON."""
    label: str
    """Name shown in the table and the chart."""
    binary: str
    """Executable that must be on PATH."""
    package: str | None = None
    """Debian package providing :attr:`binary` (installed when missing and root)."""
    startup_timeout: float = 60.0
    """Seconds to wait for the first answer (loading 10,000 names takes BIND a while)."""

    def missing(self) -> str | None:
        """Why this server cannot run here, or ``None`` if it can."""
        if shutil.which(self.binary) is None:
            where = f" (Debian package {self.package})" if self.package else ""
            return f"{self.binary} not installed{where}"
        return None

    def version(self) -> str:
        """The server's own version string, for the record."""
        argv = self.version_argv()
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        lines = (done.stdout or done.stderr).strip().splitlines()
        return lines[0].strip() if lines else "unknown"

    def version_argv(self) -> list[str]:
        return [self.binary, "-v"]

    @abc.abstractmethod
    def prepare(self, workdir: Path, zone_file: Path, origin: str, port: int,
                flood: FloodSetup | None = None) -> Launch:
        """Write the configuration under ``workdir`` and return the foreground command.

        ``workdir`` is empty and owned by this run; ``zone_file`` is absolute; the server
        must listen on 127.0.0.1 only, on ``port`` (UDP and TCP), with one worker. With
        ``flood``, it also serves that zone and limits response rates as it says.
        """


def unqualified(origin: str) -> str:
    """``example.test.`` -> ``example.test`` (how NSD and BIND configs name zones)."""
    return origin.rstrip(".")
