"""BIND 9 (ISC), ``named`` in the foreground with one worker thread."""

from __future__ import annotations

from pathlib import Path

from .base import FloodSetup, Launch, Server, unqualified


class Bind(Server):
    key = "bind"
    label = "BIND9"
    binary = "named"
    package = "bind9"

    def prepare(self, workdir: Path, zone_file: Path, origin: str, port: int,
                flood: FloodSetup | None = None) -> Launch:
        # `controls { };` disables rndc (no key, no port 953); minimal-responses drops the
        # authority/additional sections that NSD and Knot do not add either; recursion,
        # query logging, notify and DNSSEC validation off; rate limiting is off by default,
        # and with `flood` on, with the ordinary client in `exempt-clients`.
        rate_limit = extra_zone = ""
        if flood is not None:
            rate_limit = (
                f"    rate-limit {{ responses-per-second {flood.rate}; slip {flood.slip}; "
                f"window {flood.window}; exempt-clients {{ {flood.exempt}; }}; }};\n"
            )
            extra_zone = (
                f'zone "{unqualified(flood.origin)}" {{\n    type primary;\n'
                f'    file "{flood.zone_file}";\n}};\n'
            )
        conf = workdir / "named.conf"
        conf.write_text(
            f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-transfer {{ none; }};
    notify no;
    dnssec-validation no;
    querylog no;
    minimal-responses yes;
    automatic-interface-scan no;
    zone-statistics no;
{rate_limit}}};
controls {{ }};
zone "{unqualified(origin)}" {{
    type primary;
    file "{zone_file}";
}};
{extra_zone}""",
            encoding="ascii",
        )
        # -g: foreground, log to stderr; -n 1: one worker thread; -U 1: one UDP listener
        # per interface; -4: IPv4 only.
        return Launch(argv=[self.binary, "-g", "-4", "-n", "1", "-U", "1", "-c", str(conf)])
