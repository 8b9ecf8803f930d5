"""``fata bench openflow_switch``: frames per second switched from one Linux host to
another, by Fata's OpenFlow switch in fail-standalone (MAC-learning) mode and by Open
vSwitch, side by side in one run; and the controller role's responses per second beside
os-ken's.

The harness makes three network namespaces: two hosts (``h1``, ``h2``, IPv6 off so only the
benchmark's frames flow) each joined by a veth pair to a switch namespace holding the other
ends, ``s1`` and ``s2``.  In turn on those same two ends:

- Fata: ``fata run appliances/openflow_switch --netif port1=if:s1 --netif port2=if:s2 --
  --fail-mode standalone`` (no controller: the learning fallback switches);
- Open vSwitch: ``ovsdb-server`` and ``ovs-vswitchd`` started by the harness with a private
  database and run directory in a temporary directory (never the system's), a bridge with
  ``s1`` and ``s2`` and its default ``NORMAL`` flow (learning).  The kernel datapath
  (``system``) is tried first; when it cannot be had (no ``openvswitch`` kernel module in a
  container), the userspace one (``netdev``).  The table says which ran.

For each, a ping from ``h1`` to ``h2`` until one is answered (the switch is up and has
learned both hosts), then ``traffic.py``: a UDP sender in ``h1`` sending minimum-size
frames as fast as it can for the round's duration, a receiver in ``h2`` counting what
arrives.  The rate is datagrams received over the span from the first to the last (each a
frame forwarded h1 -> h2); the offered rate and the loss are reported too.  The switch is
pinned to one CPU, sender and receiver to another.  Open vSwitch is installed with apt-get
when missing (as root, unless ``--no-install``); when it cannot run, its row says why.

The controller half (``controller_bench.py``): the appliance built with ``--key
role=controller`` and the same learning switch on os-ken, each answering cbench.py's 16
fake switches on loopback, in batch and single mode; responses per second, and Fata's
batch rate over os-ken's.

    fata bench openflow_switch [--quick] [--part all|switch|controller] [--of-version 1|4]
        [--duration S] [--rounds N] [--no-install] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPLIANCE = HERE.parent
REPO = HERE.parents[2]
if str(REPO / "core") not in sys.path:
    sys.path.insert(0, str(REPO / "core"))

from fata.bench import report  # noqa: E402

sys.path.insert(0, str(HERE))
import controller_bench  # noqa: E402
from ovs_daemons import BenchError, Ovs, ensure_ovs, pin, sh, stop, wait_until  # noqa: E402

TRAFFIC = HERE / "traffic.py"
H1_IP, H2_IP = "10.243.0.1", "10.243.0.2"
UDP_PORT = 9
PAYLOAD = 18  # 14 + 20 + 8 + 18 = 60 bytes: a minimum Ethernet frame
START_TIMEOUT = 120.0  # the first fata run builds the image
READY_TIMEOUT = 30.0  # the hosts reach each other through a started switch


class Lab:
    """The three namespaces and the two veth pairs; deleted on exit."""

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.h1, self.h2, self.sw = f"ofbh1{tag}", f"ofbh2{tag}", f"ofbsw{tag}"

    def __enter__(self) -> Lab:
        try:
            for ns in (self.h1, self.h2, self.sw):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                sh("ip", "netns", "add", ns)
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("ip", "netns", "exec", ns, "sysctl", "-qw",
                   "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            for host, port in ((self.h1, "s1"), (self.h2, "s2")):
                sh("ip", "-n", host, "link", "add", "e0", "type", "veth", "peer", "name", port,
                   "netns", self.sw)
            sh("ip", "-n", self.h1, "addr", "add", f"{H1_IP}/24", "dev", "e0")
            sh("ip", "-n", self.h2, "addr", "add", f"{H2_IP}/24", "dev", "e0")
            for ns, dev in ((self.h1, "e0"), (self.h2, "e0"), (self.sw, "s1"), (self.sw, "s2")):
                sh("ip", "-n", ns, "link", "set", dev, "up")
            # The hosts compute their checksums: a veth's offloaded (partial) UDP checksum
            # stays unfilled through a userspace switch reading a packet socket, and the
            # receiving host drops the datagram (ICMP is summed in software, so pings pass).
            for ns in (self.h1, self.h2):
                sh("ip", "netns", "exec", ns, "ethtool", "-K", "e0", "tx", "off")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.h1, self.h2, self.sw):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def start(self, ns: str, argv: list[str], core: int, log: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(REPO), start_new_session=True,
                                    preexec_fn=pin(core))

    def reachable(self, timeout: float) -> None:
        """A ping h1 -> h2 answered: the switch forwards and has seen both hosts."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(["ip", "netns", "exec", self.h1, "ping", "-c", "1", "-W", "1",
                                   H2_IP], capture_output=True, text=True)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"no ping answered h1 -> h2 within {timeout:g} s")

    def measure(self, seconds: float, core: int) -> dict:
        """One round of UDP h1 -> h2: offered and forwarded frames per second."""
        py = sys.executable
        recv = subprocess.Popen(["ip", "netns", "exec", self.h2, py, str(TRAFFIC), "recv",
                                 str(UDP_PORT)], stdout=subprocess.PIPE, text=True,
                                preexec_fn=pin(core))
        try:
            assert recv.stdout is not None
            if recv.stdout.readline().strip() != "ready":
                raise BenchError("the receiver did not start")
            send = subprocess.run(["ip", "netns", "exec", self.h1, py, str(TRAFFIC), "send",
                                   H2_IP, str(UDP_PORT), str(seconds), str(PAYLOAD)],
                                  capture_output=True, text=True, timeout=seconds + 60,
                                  preexec_fn=pin(core))
            if send.returncode != 0:
                raise BenchError(f"the sender failed: {send.stderr.strip()}")
            out, _ = recv.communicate(timeout=60)
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        got, sent = json.loads(out), json.loads(send.stdout)
        offered = sent["sent"] / sent["elapsed_s"]
        rate = got["received"] / got["span_s"] if got["received"] > 1 else 0.0
        return {"offered_per_s": offered, "frames_per_s": rate, "sent": sent["sent"],
                "received": got["received"],
                "loss": 1 - got["received"] / sent["sent"] if sent["sent"] else None}


def rounds(lab: Lab, n: int, seconds: float, core: int) -> dict:
    lab.reachable(READY_TIMEOUT)
    results = [lab.measure(seconds, core) for _ in range(n)]
    best = {k: statistics.median(r[k] for r in results)
            for k in ("offered_per_s", "frames_per_s")}
    losses = [r["loss"] for r in results if r["loss"] is not None]
    best["loss"] = statistics.median(losses) if losses else None
    best["rounds"] = [r["frames_per_s"] for r in results]
    if not best["frames_per_s"] > 0:
        raise BenchError(f"pings passed but no UDP datagram reached h2 ({results})")
    return best


def run_fata(lab: Lab, tmp: Path, n: int, seconds: float, cores: tuple[int, int]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), str(APPLIANCE), os.environ.get("PYTHONPATH", "")]))
    log = tmp / "fata.log"
    proc = lab.start(lab.sw, [sys.executable, "-m", "fata", "run", str(APPLIANCE),
                              "--netif", "port1=if:s1", "--netif", "port2=if:s2", "--",
                              "--fail-mode", "standalone"], cores[0], log, env)
    try:
        wait_until(lambda: "switch up:" in log.read_text(errors="replace"), START_TIMEOUT,
                   "fata run appliances/openflow_switch", proc, log)
        row = rounds(lab, n, seconds, cores[1])
    finally:
        stop(proc)
    return {"server": "Fata openflow_switch", "datapath": "fail-standalone learning",
            **row, "status": "ok"}


def run_ovs(lab: Lab, tmp: Path, n: int, seconds: float, cores: tuple[int, int],
            install: bool) -> dict:
    row = {"server": "Open vSwitch", "datapath": None}
    why = ensure_ovs(install)
    if why is not None:
        return {**row, "status": f"not run: {why}"}
    ovs = Ovs(lab.sw, tmp, cores[0], lab.start)
    if version := ovs.version():
        row["server"] = f"Open vSwitch {version}"
    notes = []
    try:
        ovs.start()
        for datapath in ("system", "netdev"):
            try:
                ovs.bridge("br0", datapath, {"s1": None, "s2": None})
            except BenchError as exc:
                if datapath == "system":
                    module = ("" if Path("/sys/module/openvswitch").exists()
                              else " (no openvswitch kernel module loaded)")
                    notes.append(f"kernel datapath unavailable{module}: {exc}")
                else:
                    notes.append(str(exc))
                ovs.delete_bridge("br0")
                continue
            row["datapath"] = "kernel (system)" if datapath == "system" else "userspace (netdev)"
            break
        else:
            return {**row, "status": "not run: " + "; ".join(notes)}
        row.update(rounds(lab, n, seconds, cores[1]))
        row["status"] = "ok"
    except BenchError as exc:
        row["status"] = f"not run: {exc}"
    finally:
        ovs.stop()
    if notes:
        row["note"] = "; ".join(notes)
    return row


def switch_part(tmp: Path, n: int, seconds: float, cores: tuple[int, int],
                install: bool) -> tuple[list[dict], float | None]:
    """Fata's switch and Open vSwitch forwarding between the lab's hosts: rows, ratio."""
    rows = []
    with Lab() as lab:
        try:
            rows.append(run_fata(lab, tmp, n, seconds, cores))
        except BenchError as exc:
            rows.append({"server": "Fata openflow_switch", "datapath": "fail-standalone learning",
                         "status": f"failed: {exc}"})
        rows.append(run_ovs(lab, tmp, n, seconds, cores, install))
    fata_rate, ovs_rate = (rows[0].get("frames_per_s"), rows[1].get("frames_per_s"))
    ratio = report.ratio(fata_rate, ovs_rate)
    columns = [report.Column("server", "Switch", align="left"),
               report.Column("datapath", "Datapath", align="left"),
               report.Column("offered_per_s", "Offered frames/s", "{:,.0f}"),
               report.Column("frames_per_s", "Forwarded frames/s", "{:,.0f}"),
               report.Column("loss", "Loss", "{:.1%}"),
               report.Column("status", "Status", align="left")]
    title = (f"fata bench openflow_switch: UDP h1 -> h2, {PAYLOAD + 42}-byte frames, "
             f"{n} x {seconds:g} s, switch on CPU {cores[0]}, hosts on CPU {cores[1]}")
    report.print_table(rows, columns, title)
    for row in rows:
        if row.get("note"):
            print(f"{row['server']}: {row['note']}")
    print("Fata / Open vSwitch forwarded frames/s: "
          + ("-" if ratio is None else f"{ratio:.3f}")
          + ("" if ratio is not None else f" ({rows[1]['status']})"))
    return rows, ratio


def controller_part(rows: list[dict], seconds: float, n: int, version: int,
                    cores: tuple[int, int]) -> float | None:
    """Print the controller table; the ratio of the batch rates, Fata's over os-ken's."""
    columns = [report.Column("controller", "Controller", align="left"),
               report.Column("mode", "Mode", align="left"),
               report.Column("responses_per_s", "Responses/s", "{:,.0f}"),
               report.Column("min", "Min", "{:,.0f}"), report.Column("max", "Max", "{:,.0f}"),
               report.Column("status", "Status", align="left")]
    title = (f"fata bench openflow_switch: controller responses (cbench.py, 16 switches, "
             f"OpenFlow 0x{version:02x}), {n} x {seconds:g} s, controller on CPU {cores[0]}, "
             f"switches on CPU {cores[1]}")
    report.print_table(rows, columns, title)
    batch = {r["controller"]: r.get("responses_per_s") for r in rows if r.get("mode") == "batch"}
    ratio = report.ratio(batch.get("Fata controller"), batch.get("os-ken simple_switch"))
    print("Fata / os-ken controller responses/s (batch): "
          + ("-" if ratio is None else f"{ratio:.3f}"))
    return ratio


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fata bench openflow_switch",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one round of 2 s per switch")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per switch (median shown)")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install openvswitch-switch when it is missing")
    p.add_argument("--part", choices=["all", "switch", "controller"], default="all",
                   help="the switch's forwarding, the controller's responses, or both")
    p.add_argument("--of-version", type=int, choices=[1, 4], default=1,
                   help="the OpenFlow version of the controller benchmark's fake switches "
                        "(1: OpenFlow 1.0, cbench's; 4: 1.3)")
    p.add_argument("--out", type=Path, default=Path("bench-results") / "openflow_switch")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.duration <= 0 or args.rounds < 1:
        print("fata bench openflow_switch: --duration and --rounds must be positive",
              file=sys.stderr)
        return 2
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("fata bench openflow_switch: needs root and ip (iproute2): it makes network "
              "namespaces and veth pairs", file=sys.stderr)
        return 2
    seconds, n = (2.0, 1) if args.quick else (args.duration, args.rounds)
    cpus = sorted(os.sched_getaffinity(0))
    cores = (cpus[0], cpus[1] if len(cpus) > 1 else cpus[0])
    payload: dict = {"benchmark": "openflow_switch",
                     "config": {"duration_s": seconds, "rounds": n, "frame_bytes": PAYLOAD + 42,
                                "switch_core": cores[0], "hosts_core": cores[1]}}
    ok = True
    with tempfile.TemporaryDirectory(prefix="fata-of-bench-") as tmp:
        if args.part in ("all", "switch"):
            rows, ratio = switch_part(Path(tmp), n, seconds, cores, not args.no_install)
            payload.update(results=rows, ratio_fata_over_ovs=ratio)
            ok = rows[0]["status"] == "ok" and (rows[0].get("frames_per_s") or 0) > 0
        if args.part in ("all", "controller"):
            c_seconds, c_rounds = (1.0, 2) if args.quick else (min(seconds, 2.0), 5)
            crows = controller_bench.run(Path(tmp), cores, c_seconds, c_rounds,
                                         args.of_version)
            cratio = controller_part(crows, c_seconds, c_rounds, args.of_version, cores)
            payload.update(controller_results=crows, controller_ratio_fata_over_osken=cratio,
                           controller_config={"seconds": c_seconds, "rounds": c_rounds,
                                              "of_version": args.of_version, "switches": 16})
            ok = ok and any(r["controller"].startswith("Fata") and r["status"] == "ok"
                            for r in crows)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "openflow-switch-bench.json", payload)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
