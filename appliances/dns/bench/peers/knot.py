"""Knot DNS (CZ.NIC), ``knotd`` in the foreground with one UDP worker."""

from __future__ import annotations

from pathlib import Path

from .base import Launch, Server


class Knot(Server):
    key = "knot"
    label = "Knot"
    binary = "knotd"
    package = "knot"

    def version_argv(self) -> list[str]:
        return [self.binary, "--version"]

    def prepare(self, workdir: Path, zone_file: Path, origin: str, port: int) -> Launch:
        # One worker of each kind; no journal, never write the zone file back, no semantic
        # checks (they only cost load time). Knot has no rate limiting unless the rrl module
        # is configured, and logs no queries unless mod-dnstap/mod-stats are.
        conf = workdir / "knot.conf"
        conf.write_text(
            f"""server:
    rundir: "{workdir}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{workdir}/db"
control:
    listen: "{workdir}/knot.sock"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{workdir}"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
zone:
  - domain: {origin}
    file: "{zone_file}"
""",
            encoding="ascii",
        )
        return Launch(argv=[self.binary, "-c", str(conf)])
