"""Knot DNS (CZ.NIC), ``knotd`` in the foreground with one UDP worker."""

from __future__ import annotations

from pathlib import Path

from .base import FloodSetup, Launch, Server


class Knot(Server):
    key = "knot"
    label = "Knot"
    binary = "knotd"
    package = "knot"

    def version_argv(self) -> list[str]:
        return [self.binary, "--version"]

    def prepare(self, workdir: Path, zone_file: Path, origin: str, port: int,
                flood: FloodSetup | None = None) -> Launch:
        # One worker of each kind; no journal, never write the zone file back, no semantic
        # checks (they only cost load time). Knot has no rate limiting unless the rrl module
        # is configured (with `flood`: mod-rrl on every zone, the ordinary client on its
        # whitelist; Knot has no window setting), and logs no queries unless
        # mod-dnstap/mod-stats are.
        rrl = module = extra_zone = ""
        if flood is not None:
            rrl = (
                f"mod-rrl:\n  - id: flood\n    rate-limit: {flood.rate}\n"
                f"    slip: {flood.slip}\n    whitelist: {flood.exempt}\n"
            )
            module = "    global-module: mod-rrl/flood\n"
            extra_zone = f'  - domain: {flood.origin}\n    file: "{flood.zone_file}"\n'
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
{rrl}log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{workdir}"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
{module}zone:
  - domain: {origin}
    file: "{zone_file}"
{extra_zone}""",
            encoding="ascii",
        )
        return Launch(argv=[self.binary, "-c", str(conf)])
