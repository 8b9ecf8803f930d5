"""``fata bench openflow_switch``: frames per second switched from one Linux host to
another at 64 and 1518 bytes, by Fata's OpenFlow switch in fail-standalone (MAC-learning)
mode, by Open vSwitch with an explicit flow and by a Linux bridge, side by side in one run;
and the controller role's responses per second beside os-ken's.

The harness makes three network namespaces: two hosts (``h1``, ``h2``, IPv6 off so only the
benchmark's frames flow) each joined by a veth pair to a switch namespace holding the other
ends, ``s1`` and ``s2``.  In turn on those same two ends:

- Fata: ``fata run --key ports=2 appliances/openflow_switch --netif port1=if:s1 --netif
  port2=if:s2 -- --fail-mode standalone`` (no controller: the learning fallback switches);
- Open vSwitch: ``ovsdb-server`` and ``ovs-vswitchd`` started by the harness with a private
  database and run directory in a temporary directory (never the system's), a bridge with
  ``s1`` and ``s2`` as ports 1 and 2 and one explicit flow each way (``in_port=1,
  actions=output:2`` and back).  The kernel datapath (``system``) is tried first; when it
  cannot be had (no ``openvswitch`` kernel module in a container), the userspace one
  (``netdev``).  The table says which ran;
- a Linux bridge of ``s1`` and ``s2`` (the kernel's: nothing to pin).

For each, a ping from ``h1`` to ``h2`` until one is answered (the switch is up and has
learned both hosts), then ``traffic.py`` for each frame size: a UDP sender in ``h1``
sending frames of that size as fast as it can for the round's duration, a receiver in
``h2`` counting what arrives.  The rate is datagrams received over the span from the first to the last (each a
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
from ovs_daemons import BenchError, Ovs, ensure_ovs, pin, sh, start_in, stop, wait_until  # noqa: E402

TRAFFIC = HERE / "traffic.py"
H1_IP, H2_IP = "10.243.0.1", "10.243.0.2"
UDP_PORT = 9
# UDP payload for each frame size on the wire (with the 4-byte FCS): 14 + 20 + 8 + 18 + 4
# = 64, the minimum; 14 + 20 + 8 + 1472 + 4 = 1518, the maximum untagged frame.
PAYLOADS = {64: 18, 1518: 1472}
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

    start = staticmethod(start_in)

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

    def measure(self, seconds: float, core: int, payload: int) -> dict:
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
                                   H2_IP, str(UDP_PORT), str(seconds), str(payload)],
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


def rounds(lab: Lab, n: int, seconds: float, core: int) -> list[dict]:
    """Each frame size's rounds through the switch now running: a row per size."""
    lab.reachable(READY_TIMEOUT)
    rows = []
    for frame, payload in PAYLOADS.items():
        results = [lab.measure(seconds, core, payload) for _ in range(n)]
        best = {k: statistics.median(r[k] for r in results)
                for k in ("offered_per_s", "frames_per_s")}
        losses = [r["loss"] for r in results if r["loss"] is not None]
        best["loss"] = statistics.median(losses) if losses else None
        best["rounds"] = [r["frames_per_s"] for r in results]
        best["frame_bytes"] = frame
        if not best["frames_per_s"] > 0:
            raise BenchError(f"pings passed but no {frame}-byte frame reached h2 ({results})")
        rows.append(best)
    return rows


def _failed(row: dict, status: str) -> list[dict]:
    return [{**row, "frame_bytes": frame, "status": status} for frame in PAYLOADS]


def run_fata(lab: Lab, tmp: Path, n: int, seconds: float, cores: tuple[int, int]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), str(APPLIANCE), os.environ.get("PYTHONPATH", "")]))
    log = tmp / "fata.log"
    row = {"server": "Fata openflow_switch", "datapath": "fail-standalone learning"}
    proc = lab.start(lab.sw, [sys.executable, "-m", "fata", "run", "--key", "ports=2",
                              str(APPLIANCE), "--netif", "port1=if:s1", "--netif", "port2=if:s2",
                              "--", "--fail-mode", "standalone"], cores[0], log, env)
    try:
        wait_until(lambda: "switch up:" in log.read_text(errors="replace"), START_TIMEOUT,
                   "fata run appliances/openflow_switch", proc, log)
        return [{**row, **r, "status": "ok"} for r in rounds(lab, n, seconds, cores[1])]
    except BenchError as exc:
        return _failed(row, f"failed: {exc}")
    finally:
        stop(proc)


def run_ovs(lab: Lab, tmp: Path, n: int, seconds: float, cores: tuple[int, int],
            install: bool) -> list[dict]:
    """Open vSwitch with an explicit flow each way (port 1 to 2, 2 to 1), on the kernel
    datapath when it can be had, else the userspace one."""
    row: dict = {"server": "Open vSwitch", "datapath": None}
    why = ensure_ovs(install)
    if why is not None:
        return _failed(row, f"not run: {why}")
    ovs = Ovs(lab.sw, tmp, cores[0], lab.start)
    if version := ovs.version():
        row["server"] = f"Open vSwitch {version}"
    notes = []
    try:
        ovs.start()
        for datapath in ("system", "netdev"):
            try:
                ovs.bridge("br0", datapath, {"s1": 1, "s2": 2})
            except BenchError as exc:
                if datapath == "system":
                    module = ("" if Path("/sys/module/openvswitch").exists()
                              else " (no openvswitch kernel module loaded)")
                    notes.append(f"kernel datapath unavailable{module}: {exc}")
                else:
                    notes.append(str(exc))
                ovs.delete_bridge("br0")
                continue
            row["datapath"] = ("kernel (system)" if datapath == "system"
                               else "userspace (netdev)") + ", explicit flows"
            break
        else:
            return _failed(row, "not run: " + "; ".join(notes))
        ovs.ofctl("del-flows", "br0")
        for a, b in ((1, 2), (2, 1)):
            ovs.ofctl("add-flow", "br0", f"in_port={a},actions=output:{b}")
        if notes:
            row["note"] = "; ".join(notes)
        return [{**row, **r, "status": "ok"} for r in rounds(lab, n, seconds, cores[1])]
    except BenchError as exc:
        return _failed(row, f"not run: {exc}")
    finally:
        ovs.stop()


def run_bridge(lab: Lab, n: int, seconds: float, cores: tuple[int, int]) -> list[dict]:
    """A Linux bridge of the two ports, in the kernel (no CPU to pin it to)."""
    row = {"server": "Linux bridge", "datapath": "kernel, learning"}
    bridge = "lbr0"  # Open vSwitch's run may leave its own br0 device behind
    try:
        sh("ip", "-n", lab.sw, "link", "add", bridge, "type", "bridge")
        for dev in ("s1", "s2"):
            sh("ip", "-n", lab.sw, "link", "set", dev, "master", bridge)
        sh("ip", "-n", lab.sw, "link", "set", bridge, "up")
        try:
            return [{**row, **r, "status": "ok"} for r in rounds(lab, n, seconds, cores[1])]
        finally:
            subprocess.run(["ip", "-n", lab.sw, "link", "del", bridge], capture_output=True)
    except BenchError as exc:
        return _failed(row, f"not run: {exc}")


def switch_part(tmp: Path, n: int, seconds: float, cores: tuple[int, int],
                install: bool) -> tuple[list[dict], float | None]:
    """The switches forwarding between the lab's hosts, at each frame size: rows, and
    Fata's rate over Open vSwitch's at 64 bytes."""
    with Lab() as lab:
        rows = run_fata(lab, tmp, n, seconds, cores)
        rows += run_ovs(lab, tmp, n, seconds, cores, install)
        rows += run_bridge(lab, n, seconds, cores)
    small = {r["server"].split()[0]: r.get("frames_per_s") for r in rows
             if r["frame_bytes"] == 64}
    ratio = report.ratio(small.get("Fata"), small.get("Open"))
    columns = [report.Column("server", "Switch", align="left"),
               report.Column("datapath", "Datapath", align="left"),
               report.Column("frame_bytes", "Frame", "{:d}"),
               report.Column("offered_per_s", "Offered frames/s", "{:,.0f}"),
               report.Column("frames_per_s", "Forwarded frames/s", "{:,.0f}"),
               report.Column("loss", "Loss", "{:.1%}"),
               report.Column("status", "Status", align="left")]
    title = (f"fata bench openflow_switch: UDP h1 -> h2, {n} x {seconds:g} s per frame size, "
             f"switch on CPU {cores[0]}, hosts on CPU {cores[1]}")
    report.print_table(rows, columns, title)
    for note in dict.fromkeys(f"{r['server']}: {r['note']}" for r in rows if r.get("note")):
        print(note)
    ovs_status = next((r["status"] for r in rows if r["server"].startswith("Open")), "")
    print("Fata / Open vSwitch forwarded frames/s at 64 bytes: "
          + ("-" if ratio is None else f"{ratio:.3f}")
          + ("" if ratio is not None else f" ({ovs_status})"))
    return rows, ratio


def charts(payload: dict, out: Path) -> list[Path]:
    """The PNGs of what was measured: forwarding by frame size, controller responses by
    mode (one bar per switch or controller; a row that did not run is marked n/a)."""
    made = []
    if "results" in payload:
        series: dict[str, list[float | None]] = {}
        for row in payload["results"]:
            values = series.setdefault(row["server"], [None] * len(PAYLOADS))
            values[list(PAYLOADS).index(row["frame_bytes"])] = row.get("frames_per_s")
        made.append(report.grouped_bar_chart(
            out / "openflow-switch-forwarding.png", [f"{f} B" for f in PAYLOADS], series,
            title="Forwarding between two hosts (UDP h1 -> h2)", ylabel="frames/s",
            xlabel="frame size"))
    if "controller_results" in payload:
        cseries: dict[str, list[float | None]] = {}
        modes = list(controller_bench.MODES)
        for row in payload["controller_results"]:
            values = cseries.setdefault(row["controller"], [None] * len(modes))
            if row.get("mode") in modes:
                values[modes.index(row["mode"])] = row.get("responses_per_s")
        made.append(report.grouped_bar_chart(
            out / "openflow-controller.png", modes, cseries,
            title="Learning-switch controller under cbench.py (16 switches)",
            ylabel="responses/s", xlabel="mode"))
    return made


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
                     "config": {"duration_s": seconds, "rounds": n,
                                "frame_bytes": list(PAYLOADS),
                                "switch_core": cores[0], "hosts_core": cores[1]}}
    ok = True
    with tempfile.TemporaryDirectory(prefix="fata-of-bench-") as tmp:
        if args.part in ("all", "switch"):
            rows, ratio = switch_part(Path(tmp), n, seconds, cores, not args.no_install)
            payload.update(results=rows, ratio_fata_over_ovs=ratio)
            ok = all(r["status"] == "ok" for r in rows if r["server"].startswith("Fata"))
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
    for png in charts(payload, args.out):
        print(f"wrote {png}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
