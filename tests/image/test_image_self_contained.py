"""Self-contained images: the image carries its interpreter (binary, libpython, their ELF
closure and the dynamic loader, stripped) and runs on it, with the host's Python hidden,
from its own launcher, and in a root holding nothing but its own files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fata import image
from fata.image.strip import elf_section_names

ROOT = Path(__file__).resolve().parents[2]


def _extracted(path: Path) -> Path:
    launch = image.prepare(path, [])
    launch.close()
    return launch.root


def _bare_path(tmp: Path) -> str:
    """A PATH with only what the launcher script uses (no python anywhere on it)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("sh", "env", "sed"):
        found = shutil.which(tool)
        assert found, tool
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.fixture(scope="module")
def dns_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image.build(ROOT / "appliances" / "dns", {}, tmp_path_factory.mktemp("dns-dist"),
                       log=lambda *a: None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_dns(port: int, proc: subprocess.Popen, timeout: float = 60) -> str:
    import dns.message
    import dns.query

    query = dns.message.make_query("example.org.", "SOA")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the appliance exited with {proc.returncode}: "
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        try:
            reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return reply.to_text()
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
    raise AssertionError(f"no DNS answer on port {port} within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_the_image_carries_its_interpreter_with_origins(tiny_image: Path) -> None:
    manifest = image.verify(tiny_image)
    section = manifest["interpreter"]
    files = {e["path"]: e for e in manifest["files"]}
    assert section["binary"] == "interp/bin/python3.11"
    assert section["loader"] == "interp/lib/ld-linux-x86-64.so.2"
    names = {p.rpartition("/")[2] for p, e in files.items() if e["kind"] == "interpreter"}
    assert {"python3.11", "ld-linux-x86-64.so.2", "libc.so.6", "libpython3.11.so.1.0",
            "launch"} <= names
    for path, entry in files.items():
        if entry["kind"] == "interpreter" and path != "launch":
            assert entry["origin"] == section["origins"][path]
            assert entry["origin"].startswith("not from a package: ") or " " in entry["origin"]
    if shutil.which("dpkg-query"):
        assert files["interp/lib/libc.so.6"]["origin"].startswith("libc6")
    # the seal's hash module is the image's own, not the host interpreter's
    assert any("/lib-dynload/_sha256." in p or "/lib-dynload/_hashlib." in p for p in files)
    root = _extracted(tiny_image)
    if shutil.which("strip"):
        sections = elf_section_names((root / "interp/lib/libpython3.11.so.1.0").read_bytes())
        assert ".symtab" not in sections and not any(s.startswith(".debug") for s in sections)


def test_inspect_shows_the_interpreter_on_its_own_line(tiny_image: Path) -> None:
    text = image.format_inspect(image.inspect(tiny_image))
    lines = [line for line in text.splitlines() if line.startswith("interp ")]
    assert len(lines) == 1 and "interp/bin/python3.11" in lines[0], text
    assert any(line.startswith("interpreter ") for line in text.splitlines()), text


def test_a_run_maps_only_the_images_own_libraries(tiny_image: Path) -> None:
    launch = image.prepare(tiny_image, ["--", "--mode", "maps"])
    try:
        assert launch.executable == f"{launch.root}/interp/lib/ld-linux-x86-64.so.2"
        done = subprocess.run(launch.argv, env={**launch.env, "PATH": ""},
                              executable=launch.executable, pass_fds=launch.pass_fds,
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        launch.close()
    assert done.returncode == 0, done.stderr
    maps = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("MAP ")]
    files = [m for m in maps if m.startswith("/") and "memfd:" not in m]
    assert files and all(m.startswith(str(launch.root) + "/") for m in files), files


def test_runs_from_its_launcher_with_the_hosts_python_hidden(tiny_image: Path,
                                                            tmp_path: Path) -> None:
    root = _extracted(tiny_image)
    env = {"PATH": _bare_path(tmp_path), "PYTHONHOME": "/nonexistent", "PYTHONPATH": "/x"}
    done = subprocess.run([str(root / "launch"), "--", "--mode", "hello"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "fata_tiny says hello from the data" in done.stdout + done.stderr


def test_an_image_for_another_python_runs_on_its_own(tiny_image: Path) -> None:
    """``fata run`` runs the image's interpreter, whatever Python runs fata: started with a
    sys.executable that is not a Python at all and an empty PATH."""
    script = ("import sys; sys.executable = '/nonexistent/python'; "
              "from fata.image.run import run_image; "
              f"run_image({str(tiny_image)!r}, ['--', '--mode', 'hello'])")
    env = {**os.environ, "PATH": ""}
    # the interpreter running the tests (a venv's, where fata is installed): PYTHONPATH
    # need not be set for it to import fata
    done = subprocess.run([sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "fata_tiny says hello from the data" in done.stdout + done.stderr


def test_a_changed_interpreter_library_is_repaired_before_it_runs(tiny_image: Path) -> None:
    root = _extracted(tiny_image)
    target = root / "interp/lib/libc.so.6"
    good = target.read_bytes()
    st = target.stat()
    target.parent.chmod(0o755)
    target.chmod(0o755)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    target.write_bytes(bytes(bad))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    # also forge the record's stat check: the hash before exec still catches it
    from fata.image import run as run_mod

    record = run_mod._verified_record(run_mod._file_digest(tiny_image))
    import json

    data = json.loads(record.read_text())
    data["stat"] = run_mod._stat_of(root, image.verify(tiny_image))
    record.write_text(json.dumps(data))
    assert image.prepare(tiny_image, []).root == root
    assert target.read_bytes() == good


def test_the_dns_image_answers_from_its_launcher(dns_image: Path, tmp_path: Path) -> None:
    root = _extracted(dns_image)
    port = _free_port()
    proc = subprocess.Popen([str(root / "launch"), "--", "--listen", "127.0.0.1", "--port", str(port)],
                            env={"PATH": _bare_path(tmp_path)}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "SOA" in _wait_dns(port, proc)
    finally:
        _stop(proc)


def _copy_extraction(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest, symlinks=True, ignore=shutil.ignore_patterns(".fata-extracted"))
    return dest


@pytest.mark.root
@pytest.mark.tool("chroot")
def test_a_verified_image_runs_in_a_root_holding_only_its_files(tiny_image: Path,
                                                                tmp_path: Path) -> None:
    image.verify(tiny_image)
    # without -X frozen_modules=on (launch and fata run pass it): an installed Python's default
    jail = _copy_extraction(_extracted(tiny_image), tmp_path / "jail")
    assert not (jail / "usr").exists() and not (jail / "bin").exists()
    done = subprocess.run(
        [shutil.which("chroot") or "/usr/sbin/chroot", str(jail),
         "/interp/lib/ld-linux-x86-64.so.2", "--library-path", "/interp/lib",
         "/interp/bin/python3.11", "-S", "-s", "-B", "-P", "/lib/python3.11/__fata_main__.pyc",
         "--", "--mode", "hello"],
        env={"PYTHONHOME": "/", "PYTHONUTF8": "1", "PATH": ""}, capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "fata_tiny says hello from the data" in done.stdout + done.stderr


@pytest.mark.root
@pytest.mark.tool("chroot")
def test_the_dns_image_answers_in_a_root_holding_only_its_files(dns_image: Path,
                                                                tmp_path: Path) -> None:
    image.verify(dns_image)
    jail = _copy_extraction(_extracted(dns_image), tmp_path / "jail")
    port = _free_port()
    proc = subprocess.Popen(
        [shutil.which("chroot") or "/usr/sbin/chroot", str(jail),
         "/interp/lib/ld-linux-x86-64.so.2", "--library-path", "/interp/lib",
         "/interp/bin/python3.11", "-X", "frozen_modules=on", "-S", "-s", "-B", "-P",
         "/lib/python3.11/__fata_main__.pyc", "--", "--listen", "127.0.0.1", "--port", str(port)],
        env={"PYTHONHOME": "/", "PYTHONUTF8": "1", "PATH": ""}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert "SOA" in _wait_dns(port, proc)
    finally:
        _stop(proc)


def test_a_host_python_image_still_builds_and_runs(tiny_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATA_SELF_CONTAINED", "0")
    path = image.build(tiny_dir, {}, tmp_path, log=lambda *a: None)
    manifest = image.verify(path)
    assert "interpreter" not in manifest
    assert not any(e["kind"] == "interpreter" for e in manifest["files"])
    launch = image.prepare(path, [])
    launch.close()
    assert "ld-linux" not in launch.executable
