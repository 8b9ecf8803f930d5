"""os-ken's OpenFlow switch tester against a running switch: Fata's appliance, or Open
vSwitch for the baseline, as the target.

The wiring is the tester's (``os_ken/tests/switch/tester.py``): one network namespace holds
three veth pairs ``tN``-``xN`` (N = 1, 2, 3), all offloads of transmit checksums off, IPv6
off (so no frame flows that a test did not send).  The **target** switch (datapath id 1)
has ports 1, 2, 3 on ``t1``-``t3``; the **tester** switch (datapath id 2), Open vSwitch's
userspace ``netdev`` datapath started by hand (there is no kernel module in a container),
has ports 1, 2, 3 on ``x1``-``x3``.  Both connect to the tester app, os-ken on a loopback
port in that namespace, run by ``osken_launch.py`` beside this file (os-ken 4 has no
``osken-manager``).  For each case the tester installs the case's flows, groups and meters
on the target, sends its packet from the tester's port 1 and checks what the tester's port
2 receives (or the target's PACKET_IN, or a table miss by the table counters).

The target is ``fata run --key ports=3 appliances/openflow_switch --netif port1=if:t1 ...
-- --controller 127.0.0.1:PORT --datapath-id 1`` (``--target fata``), or a second Open vSwitch bridge of the
same ``ovs-vswitchd`` on ``t1``-``t3`` (``--target ovs``).  The tester always ends its
process with SIGTERM (status 143); its verdict is the ``OK(n) / ERROR(m)`` summary and one
line per case, parsed into the JSON this writes.

    python appliances/openflow_switch/bench/switch_tester.py [--target fata|ovs]
        [--groups match,action,group,meter] [--only TEXT] [--out FILE]

All 144 files (991 cases) by default; the group and meter files hold throughput cases that
send for 30 s each.  Needs root, ``ip``, ``ethtool``, Open vSwitch and os-ken.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPLIANCE = HERE.parent
REPO = HERE.parents[2]
LAUNCHER = HERE / "osken_launch.py"
sys.path.insert(0, str(HERE))
from ovs_daemons import BenchError, Ovs, ensure_ovs, sh, start_in, stop, wait_until  # noqa: E402

GROUPS = ("action", "group", "match", "meter")
PORTS = (1, 2, 3)
START_TIMEOUT = 120.0  # the first fata run builds the image
RESULT = re.compile(r"^    (?P<desc>\S.*?)\s+(?P<result>OK|ERROR)\s*$")
SUMMARY = re.compile(r"^OK\((?P<ok>\d+)\) / ERROR\((?P<error>\d+)\)\s*$")


class TesterLab:
    """The namespace and the three veth pairs; deleted on exit."""

    def __init__(self) -> None:
        self.ns = f"oft{os.getpid() % 100000}"

    def __enter__(self) -> TesterLab:
        try:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            sh("ip", "netns", "add", self.ns)
            sh("ip", "-n", self.ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", self.ns, "sysctl", "-qw",
               "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            for n in PORTS:
                sh("ip", "-n", self.ns, "link", "add", f"t{n}", "type", "veth", "peer",
                   "name", f"x{n}")
                for dev in (f"t{n}", f"x{n}"):
                    sh("ip", "netns", "exec", self.ns, "ethtool", "-K", dev, "tx", "off")
                    sh("ip", "-n", self.ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    start = staticmethod(start_in)


def test_dir(tmp: Path, groups: list[str], only: str | None) -> tuple[Path, int]:
    """A directory of the chosen groups' test files (those whose path holds ``only``, if
    given), and how many cases they hold."""
    import os_ken

    source = Path(os_ken.__file__).parent / "tests" / "switch" / "of13"
    chosen = tmp / "of13"
    cases = 0
    for group in groups:
        for path in sorted((source / group).rglob("*.json")):
            rel = path.relative_to(source)
            if only and only not in str(rel):
                continue
            (chosen / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, chosen / rel)
            cases += len(json.loads(path.read_text())) - 1
    return chosen, cases


def parse_report(text: str) -> dict:
    """The tester's log as results: per case its file, description, verdict and the
    reason given for an error; the summary counts."""
    cases: list[dict] = []
    current_file = None
    summary = None
    lines = text.splitlines()
    in_report = False  # after its header the report lists the errors again, by kind
    for i, line in enumerate(lines):
        if match := SUMMARY.match(line):
            summary = {"ok": int(match["ok"]), "error": int(match["error"])}
            continue
        in_report = in_report or "--- Test report ---" in line
        if in_report:
            continue
        match = RESULT.match(line)
        if match:
            case = {"file": current_file, "case": match["desc"], "result": match["result"]}
            if match["result"] == "ERROR" and i + 1 < len(lines):
                case["reason"] = lines[i + 1].strip()
            cases.append(case)
        elif line and not line.startswith(" ") and not line.startswith(("dpid=", "---")):
            current_file = line.strip()
    return {"summary": summary, "cases": cases}


def run(target: str, groups: list[str], only: str | None, tmp: Path) -> dict:
    """One tester run against ``target``; its parsed report, with counts and timing."""
    why = ensure_ovs(install=True)
    if why is not None:
        raise BenchError(why)
    cpus = sorted(os.sched_getaffinity(0))
    cores = (cpus[0], cpus[-1])
    port = 20000 + os.getpid() % 20000
    tests, expected = test_dir(tmp, groups, only)
    with TesterLab() as lab:
        ovs = Ovs(lab.ns, tmp, cores[1], lab.start)
        procs: list[subprocess.Popen] = []
        controller_log = tmp / "tester.log"
        try:
            ovs.start()
            secure = ("fail_mode=secure", "protocols=OpenFlow13")
            ovs.bridge("tester", "netdev", {f"x{n}": n for n in PORTS},
                       (*secure, "other-config:datapath-id=0000000000000002"))
            env = dict(os.environ, OSKEN_HUB_TYPE="eventlet", PYTHONUNBUFFERED="1")
            started = time.monotonic()
            controller = lab.start(lab.ns, [
                sys.executable, str(LAUNCHER), "os_ken.tests.switch.tester", "--",
                "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(port),
                "--test-switch-dir", str(tests)], cores[0], controller_log, env)
            procs.append(controller)
            wait_until(lambda: _listening(lab.ns, port), 60, "the os-ken switch tester",
                       controller, controller_log)
            ovs.vsctl("set-controller", "tester", f"tcp:127.0.0.1:{port}")
            if target == "fata":
                target_log = tmp / "fata.log"
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                    [str(REPO / "core"), str(APPLIANCE), os.environ.get("PYTHONPATH", "")]))
                argv = [sys.executable, "-m", "fata", "run", "--key", f"ports={len(PORTS)}",
                        str(APPLIANCE)]
                for n in PORTS:
                    argv += ["--netif", f"port{n}=if:t{n}"]
                argv += ["--", "--controller", f"127.0.0.1:{port}", "--datapath-id", "1",
                         "--reconnect-min", "0.1", "--reconnect-max", "1"]
                fata = lab.start(lab.ns, argv, cores[1], target_log, env)
                procs.append(fata)
                wait_until(lambda: "switch up:" in target_log.read_text(errors="replace"),
                           START_TIMEOUT, "fata run appliances/openflow_switch", fata,
                           target_log)
                name = "Fata openflow_switch"
            else:
                ovs.bridge("target", "netdev", {f"t{n}": n for n in PORTS},
                           (*secure, "other-config:datapath-id=0000000000000001"))
                ovs.vsctl("set-controller", "target", f"tcp:127.0.0.1:{port}")
                name = f"Open vSwitch {ovs.version() or ''}".strip() + " (netdev)"
            # The tester ends itself when its report is out.
            controller.wait(timeout=6 * 3600)
            elapsed = time.monotonic() - started
        finally:
            for proc in reversed(procs):
                stop(proc)
            ovs.stop()
    report = parse_report(controller_log.read_text(errors="replace"))
    if report["summary"] is None:
        raise BenchError(f"the tester gave no summary: {controller_log.read_text()[-2000:]}")
    return {"target": name, "groups": groups, "only": only, "cases_in_files": expected,
            "elapsed_s": round(elapsed, 1), **report}


def _listening(ns: str, port: int) -> bool:
    done = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"],
                          capture_output=True, text=True)
    return bool(done.stdout.strip())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="switch_tester.py", description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=["fata", "ovs"], default="fata")
    p.add_argument("--groups", default=",".join(GROUPS),
                   help="comma-separated of13 groups (action, group, match, meter)")
    p.add_argument("--only", help="only the test files whose path holds this text")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    groups = [g for g in args.groups.split(",") if g]
    if not groups or any(g not in GROUPS for g in groups):
        p.error(f"--groups: choose from {', '.join(GROUPS)}")
    if os.geteuid() != 0:
        print("switch_tester.py: needs root (a network namespace, veths, Open vSwitch)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fata-of-tester-") as tmp:
        try:
            result = run(args.target, groups, args.only, Path(tmp))
        except BenchError as exc:
            print(f"switch_tester.py: {exc}", file=sys.stderr)
            return 1
    for case in result["cases"]:
        if case["result"] != "OK":
            print(f"ERROR {case['file']}: {case['case']}: {case.get('reason', '')}")
    s = result["summary"]
    print(f"{result['target']}: OK({s['ok']}) / ERROR({s['error']}) of "
          f"{result['cases_in_files']} cases in {result['elapsed_s']:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
