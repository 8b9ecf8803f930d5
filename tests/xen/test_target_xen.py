"""``fata build APP --target xen`` and ``fata run IMAGE``: the command starts the Xen
platform (hypervisor, xenstore_stub, netback), builds a guest domain with a vif and runs
the sealed image as that guest, confined; ``dig`` answers from the host side of the vif's
TAP; a netback killed is restarted and the guest answers again; ``fata ps`` lists the
domain; the guest's log comes through its console page; the guest is user nobody with no
capabilities, under seccomp, in an empty network namespace; SIGTERM stops it all and
leaves nothing behind.
Everything runs inside a network namespace this test makes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from appliance_util import ROOT, LoggedProcess, wait_until
from fata.platform.xen_launch import confine
from xen_util import env, python

pytestmark = [pytest.mark.root, pytest.mark.tool("ip", "dig"),
              pytest.mark.skipif(not os.path.exists("/dev/net/tun"),
                                 reason="needs /dev/net/tun")]
NS = "fataxt"


def fata(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([python(), "-m", "fata", *argv], capture_output=True, text=True,
                          env=env(), cwd=str(ROOT), timeout=300)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


class Run(LoggedProcess):
    def __init__(self, tmp: Path, image: Path, port: int = 53,
                 platform_args: tuple[str, ...] = ()) -> None:
        self.log = tmp / "run.log"
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS, python(), "-m", "fata", "run", str(image),
             "--xen-dir", str(tmp / "xen"), *platform_args, "--", "--port", str(port)],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env(), cwd=str(ROOT))
        wait_until(self._ready, 120, "the guest serving", self.output)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"fata run exited {self.proc.returncode}:\n{self.output()}")
        return " serving " in self.output()


def test_a_xen_image_runs_as_a_confined_guest_that_answers(tmp_path: Path) -> None:
    built = fata("build", "appliances/dns", "--target", "xen", "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    image = Path(built.stdout.strip().splitlines()[-1])
    assert image.name == "dns-0.1.0-xen-direct.fata"
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    run = None
    try:
        run = Run(tmp_path, image)
        log = run.output()
        where = re.search(r"domain (\d+) \(.*\): answers on (\S+) via (\S+),", log)
        pid = re.search(r"domain \d+: process (\d+)", log)
        assert where and pid, log
        domid, address, tap = int(where[1]), where[2], where[3]
        # the guest's log came through its console page, not its stderr
        own = (tmp_path / "xen" / "logs" / f"domain-{domid}.stderr").read_text()
        assert "serving example.org." in log and "serving" not in own, own
        for extra in ([], ["+tcp"]):
            out = subprocess.run(["ip", "netns", "exec", NS, "dig", *extra, "+time=2",
                                  "+tries=3", f"@{address}", "example.org", "SOA"],
                                 capture_output=True, text=True, timeout=30).stdout
            assert "status: NOERROR" in out and "ns1.example.org." in out, out
        # the driver domain dies: fata run restarts it and the guest connects again
        [netback] = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline(pid)
                     .count("fata.platform.xen_netback") and str(tmp_path) in _cmdline(pid)]
        os.kill(int(netback), signal.SIGKILL)
        wait_until(lambda: "netback exited" in run.output(), 30, "the restart", run.output)
        wait_until(lambda: "served again, by a new netback" in run.output(), 60,
                   "a new netback", run.output)
        out = subprocess.run(["ip", "netns", "exec", NS, "dig", "+time=2", "+tries=10",
                              f"@{address}", "example.org", "SOA"],
                             capture_output=True, text=True, timeout=60).stdout
        assert "status: NOERROR" in out, out + run.output()
        ps = fata("ps", "--xen-dir", str(tmp_path / "xen"))
        assert ps.returncode == 0 and re.search(rf"^\s+{domid}\s+dns-0.1.0-xen-direct-",
                                                ps.stdout, re.M), ps
        guest = status(int(pid[1]))
        assert guest["Uid"].split()[:2] == ["65534", "65534"]
        assert guest["CapEff"] == guest["CapPrm"] == "0000000000000000"
        assert guest["NoNewPrivs"] == "1" and guest["Seccomp"] == "2"
        assert os.readlink(f"/proc/{pid[1]}/ns/net") != os.readlink(
            f"/proc/{run.proc.pid}/ns/net")  # not even the namespace holding the TAP
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(30) == 0, run.output()
        gone = subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "show", tap],
                              capture_output=True)
        assert gone.returncode != 0  # netback let the TAP go, then stopped
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            with pytest.raises(OSError):
                probe.connect(str(tmp_path / "xen" / "xenstored"))
    finally:
        if run is not None:
            run.stop()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


@pytest.mark.tool("curl")
def test_the_www_appliance_serves_curl_through_the_rings(tmp_path: Path) -> None:
    built = fata("build", "appliances/www", "--target", "xen", "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    image = Path(built.stdout.strip().splitlines()[-1])
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    run = None
    try:
        run = Run(tmp_path, image, port=80)
        address = re.search(r"answers on (\S+) via", run.output())
        assert address, run.output()
        page = subprocess.run(["ip", "netns", "exec", NS, "curl", "-s", "--max-time", "20",
                               "-w", "\n%{http_code}", f"http://{address[1]}/"],
                              capture_output=True, text=True, timeout=60).stdout
        body, _, code = page.rpartition("\n")
        assert code == "200" and "<title>Fata" in body, page[-500:]
    finally:
        if run is not None:
            run.stop()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


DISK_CLIENT = """
import socket, sys
host, op, sector = sys.argv[1], sys.argv[2], int(sys.argv[3])
with socket.create_connection((host, 7000), timeout=20) as c:
    c.sendall(op.encode() + sector.to_bytes(8, "big") + (bytes([sector]) * 512 if op == "w"
                                                         else b""))
    got = b""
    while chunk := c.recv(4096):
        got += chunk
sys.stdout.write(got.hex())
"""


def test_an_appliance_with_a_disk_reads_and_writes_it_through_blkback(tmp_path: Path) -> None:
    built = fata("build", str(Path(__file__).with_name("disk_appliance")), "--target", "xen",
                 "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    image = Path(built.stdout.strip().splitlines()[-1])
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"".join(bytes([0x40 + n]) * 512 for n in range(64)))
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    run = None
    try:
        run = Run(tmp_path, image, port=7000, platform_args=("--block", f"disk={disk}"))
        assert "disk of 64 sectors" in run.output() and "vbd 0 (disk)" in run.output()
        address = re.search(r"answers on (\S+) via", run.output())[1]

        def ask(op: str, sector: int) -> bytes:
            done = subprocess.run(["ip", "netns", "exec", NS, python(), "-c", DISK_CLIENT,
                                   address, op, str(sector)], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr + run.output()
            return bytes.fromhex(done.stdout)
        assert ask("r", 3) == bytes([0x43]) * 512
        assert ask("w", 5) == b"ok"
        assert ask("r", 5) == bytes([5]) * 512
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(30) == 0, run.output()
        data = disk.read_bytes()  # what the guest wrote, durable, in the host's file
        assert data[5 * 512:6 * 512] == bytes([5]) * 512 and data[:512] == b"\x40" * 512
    finally:
        if run is not None:
            run.stop()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


SYSTEM_PYTHON = Path("/usr/bin/python3")
PROBE = """
import errno, os, socket
out = []
for family in (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET, socket.AF_NETLINK):
    try:
        socket.socket(family, socket.SOCK_DGRAM if family != socket.AF_PACKET else
                      socket.SOCK_RAW)
        out.append("open")
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
a, b = socket.socketpair()
out.append("pair")
try:
    open("/dev/net/tun", "rb")
    out.append("tun")
except OSError as exc:
    out.append(errno.errorcode[exc.errno])
out.append(str(os.getuid()))
print(" ".join(out))
"""


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs a Python nobody may run")
def test_the_guest_confinement_refuses_network_sockets_and_the_tap_device() -> None:
    done = subprocess.run([str(SYSTEM_PYTHON), "-I", "-c", PROBE], capture_output=True,
                          text=True, preexec_fn=confine, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["EACCES", "EACCES", "EACCES", "EACCES", "pair", "ENOENT",
                                   "65534"]
