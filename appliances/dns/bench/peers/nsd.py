"""NSD (NLnet Labs), ``nsd -d`` in the foreground with one server process."""

from __future__ import annotations

from pathlib import Path

from .base import FloodSetup, Launch, Server, unqualified


class Nsd(Server):
    key = "nsd"
    label = "NSD"
    binary = "nsd"
    package = "nsd"

    def prepare(self, workdir: Path, zone_file: Path, origin: str, port: int,
                flood: FloodSetup | None = None) -> Launch:
        # Debian's NSD is built with response rate limiting at 200 qps per client block by
        # default; rrl-ratelimit 0 turns it off, which a throughput benchmark needs.
        # With `flood`, RRL is on at the flood's rate. NSD cannot exempt a client; it can
        # exempt a zone's answers ("whitelist" them, at rrl-whitelist-ratelimit, 0 being no
        # limit), so the ordinary zone is exempt and the flood's zone is not: the same
        # effect for this benchmark's traffic. NSD has no window setting.
        ratelimit = 0
        ordinary_zone_extra = extra_zone = ""
        if flood is not None:
            ratelimit = flood.rate
            ordinary_zone_extra = "    rrl-whitelist: all\n"
            extra_zone = (
                f'zone:\n    name: "{unqualified(flood.origin)}"\n'
                f'    zonefile: "{flood.zone_file}"\n'
            )
        # database "" keeps the zone in memory only (no nsd.db); username/chroot "" keep
        # it from dropping privileges into paths this temporary directory does not have.
        conf = workdir / "nsd.conf"
        conf.write_text(
            f"""server:
    ip-address: 127.0.0.1
    port: {port}
    do-ip6: no
    server-count: 1
    reuseport: no
    username: ""
    chroot: ""
    zonesdir: "{workdir}"
    database: ""
    zonelistfile: "{workdir}/zone.list"
    xfrdfile: "{workdir}/xfrd.state"
    xfrdir: "{workdir}"
    pidfile: "{workdir}/nsd.pid"
    logfile: "{workdir}/nsd.log"
    verbosity: 0
    minimal-responses: yes
    rrl-ratelimit: {ratelimit}
    rrl-whitelist-ratelimit: 0
    rrl-slip: {flood.slip if flood else 2}
remote-control:
    control-enable: no
zone:
    name: "{unqualified(origin)}"
    zonefile: "{zone_file}"
{ordinary_zone_extra}{extra_zone}""",
            encoding="ascii",
        )
        return Launch(argv=[self.binary, "-d", "-c", str(conf)])
