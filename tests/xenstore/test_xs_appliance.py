"""The running daemon (``fata run appliances/xenstore_stub``) driven by Xen's own tools,
Debian's xenstore-utils, through ``XENSTORED_PATH``; and killed with SIGKILL in the middle
of writes, then restarted, losing none that were acknowledged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from appliance_util import PYTHON, ROOT, Lines, LoggedProcess, wait_until

pytestmark = pytest.mark.tool("xenstore-write")
APPLIANCE = ROOT / "appliances" / "xenstore_stub"


class RunningXenstore(LoggedProcess):
    def __init__(self, tmp: Path, store: Path, run_options: tuple[str, ...] = (),
                 app_args: tuple[str, ...] = ()) -> None:
        self.socket = tmp / "socket"
        self.log = tmp / f"xenstored-{len(list(tmp.glob('xenstored-*')))}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "core"), str(APPLIANCE)])
        python = str(PYTHON) if PYTHON.exists() else sys.executable
        self.proc = subprocess.Popen(
            [python, "-m", "fata", "run", str(APPLIANCE), *run_options, "--", "--socket",
             str(self.socket), "--store", str(store), *app_args],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        wait_until(self._ready, 90, "the daemon listening", self.output)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
        return "serving" in self.output() and self.socket.exists()

    def tool(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, XENSTORED_PATH=str(self.socket))
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=30)
        if check:
            assert done.returncode == 0, (argv, done.stderr)
        return done


@pytest.fixture()
def daemon(tmp_path: Path) -> Iterator[RunningXenstore]:
    running = RunningXenstore(tmp_path, tmp_path / "store")
    yield running
    running.stop()


def test_xenstore_utils_write_read_list_ls_rm(daemon: RunningXenstore) -> None:
    daemon.tool("xenstore-write", "/vm/1/name", "guest one", "/vm/1/memory", "512")
    assert daemon.tool("xenstore-read", "/vm/1/name").stdout == "guest one\n"
    assert daemon.tool("xenstore-list", "/vm/1").stdout.split() == ["memory", "name"]
    assert daemon.tool("xenstore-ls", "/vm").stdout.splitlines() == [
        '1 = ""', ' memory = "512"', ' name = "guest one"']
    assert daemon.tool("xenstore-exists", "/vm/1").returncode == 0
    daemon.tool("xenstore-rm", "/vm/1/name")
    missing = daemon.tool("xenstore-read", "/vm/1/name", check=False)
    assert missing.returncode != 0 and "couldn't read path /vm/1/name" in missing.stderr
    assert daemon.tool("xenstore-exists", "/vm/1/name", check=False).returncode != 0


def test_permissions_with_xenstore_chmod(daemon: RunningXenstore) -> None:
    daemon.tool("xenstore-write", "/perm/node", "v")
    daemon.tool("xenstore-chmod", "/perm/node", "n0", "r3")
    lines = daemon.tool("xenstore-ls", "-p", "/perm").stdout.splitlines()
    assert lines[0].startswith('node = "v"') and lines[0].endswith("(n0,r3)")


def test_xenstore_watch_sees_the_changes(daemon: RunningXenstore) -> None:
    env = dict(os.environ, XENSTORED_PATH=str(daemon.socket))
    watch = subprocess.Popen(["xenstore-watch", "-n", "2", "/dev"], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        lines = Lines(watch.stdout)
        first = lines.next(30, "registration event")
        daemon.tool("xenstore-write", "/dev/vif", "up")  # makes /dev too: one event, for vif
        second = lines.next(30, "event of the write")
        watch.wait(10)
    finally:
        watch.kill()
    assert (first, second) == ("/dev\n", "/dev/vif\n")


TX_LOADER = Path(__file__).with_name("tx_loader.py")


def test_sigkill_mid_writes_and_transactions_loses_nothing_acknowledged(
        tmp_path: Path) -> None:
    """Five times: xenstore-write in a loop and transactions of three writes (Fata's
    client) in another, SIGKILL at a random moment, restart on the same store.  Every
    acknowledged write and transaction is there; every transaction is whole or absent."""
    store = tmp_path / "store"
    acknowledged: dict[str, str] = {}
    committed: list[str] = []  # prefixes of acknowledged transactions
    begun: list[str] = []  # every transaction's prefix, acknowledged or not
    rng = random.Random(4)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "core"), str(APPLIANCE)]))
    for round_ in range(5):
        run = tmp_path / f"run{round_}"
        run.mkdir()
        daemon = RunningXenstore(run, store)
        env["XENSTORED_PATH"] = str(daemon.socket)
        writer = subprocess.Popen(
            ["sh", "-c", f"i=0; while xenstore-write /load/r{round_}/k$i v$i && echo $i; do "
             "i=$((i+1)); done"], stdout=subprocess.PIPE, text=True, env=env)
        python = str(PYTHON) if PYTHON.exists() else sys.executable
        txs = subprocess.Popen([python, str(TX_LOADER), str(daemon.socket), f"/tx/r{round_}"],
                               stdout=subprocess.PIPE, text=True, env=env)
        writes, commits = Lines(writer.stdout), Lines(txs.stdout)
        done = [int(writes.next(30, "acknowledged write"))
                for _ in range(rng.randint(5, 40))]
        tx_done = [int(commits.next(30, "committed transaction"))
                   for _ in range(rng.randint(2, 20))]
        daemon.proc.send_signal(signal.SIGKILL)  # mid-load: writes and commits in flight
        daemon.proc.wait(10)
        for child, lines in ((writer, writes), (txs, commits)):
            child.wait(30)
            more = iter(lambda lines=lines: lines.next(10, "end of output"), "")
            (done if child is writer else tx_done).extend(int(line) for line in more)
        for i in done:  # echoed after xenstore-write returned: acknowledged
            acknowledged[f"/load/r{round_}/k{i}"] = f"v{i}"
        committed += [f"/tx/r{round_}/t{i}" for i in tx_done]
        begun += [f"/tx/r{round_}/t{i}" for i in range(max(tx_done) + 2)]
    (tmp_path / "final").mkdir()
    again = RunningXenstore(tmp_path / "final", store)
    try:
        for path, value in acknowledged.items():
            assert again.tool("xenstore-read", path).stdout == value + "\n", path
        for prefix in begun:
            i = prefix.rsplit("t", 1)[1]
            found = [again.tool("xenstore-read", f"{prefix}/{part}", check=False).stdout
                     for part in "abc"]
            whole = found == [f"{i}{part}\n" for part in "abc"]
            assert whole or found == ["", "", ""], (prefix, found)  # all or nothing
            assert whole or prefix not in committed, prefix
    finally:
        again.stop()


TEST_XENSTORE = ROOT / ".tools" / "xen-utils" / "usr" / "lib" / "xen-4.17" / "bin" / \
    "test-xenstore"
XEN_TESTS = ("read 1", "read 2000", "write 1", "write 2000", "dir", "rm node", "rm dir",
             "ta empty", "ta empty x", "ta rmw", "ta rmw x", "ta err")


@pytest.mark.skipif(not TEST_XENSTORE.exists(),
                    reason="Xen's test-xenstore is unpacked by `make tools` (xen-utils-4.17)")
def test_xens_own_test_xenstore_passes(daemon: RunningXenstore) -> None:
    """Xen's conformance and timing program, every test 20 times, then 3 s of random
    ones: it exits non-zero at the first wrong answer."""
    listed = daemon.tool(str(TEST_XENSTORE), "-l").stdout
    assert [line.split(":")[0].strip() for line in listed.splitlines()] == list(XEN_TESTS)
    done = daemon.tool(str(TEST_XENSTORE), "-i", "20")
    for name in XEN_TESTS:
        assert any(line.startswith(name.ljust(10) + ": avg:") for line in
                   done.stdout.splitlines()), (name, done.stdout)
    assert "fail" not in (done.stdout + done.stderr).lower()
    daemon.tool(str(TEST_XENSTORE), "-r", "3")
    assert daemon.tool("xenstore-ls", "/").returncode == 0  # and it still serves
