"""``inspect`` reports what an image holds; ``new`` forks an appliance that works."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from appliance_util import free_port, wait_until
from fata import image
from fata.image.paths import project_root

from .conftest import fata_cli


def test_inspect_breaks_sizes_down_by_kind(tiny_image: Path) -> None:
    info = image.inspect(tiny_image)
    assert info["verified"] is True
    breakdown = info["breakdown"]
    assert {"appliance", "fata", "stdlib", "third-party", "data", "image",
            "interpreter"} >= set(breakdown)
    assert {"appliance", "fata", "stdlib", "data"} <= set(breakdown)
    files = info["manifest"]["files"]
    assert sum(row["files"] for row in breakdown.values()) == len(files)
    assert sum(row["bytes"] for row in breakdown.values()) == sum(e["size"] for e in files)
    assert info["file_size"] == tiny_image.stat().st_size
    text = image.format_inspect(info)
    for needle in ("tiny 0.1.0", "stdlib", "third-party" if "third-party" in breakdown else "fata",
                   "fata development key", "largest members"):
        assert needle in text


def test_inspect_cli_json_and_a_tampered_image(tiny_image: Path, tmp_path: Path) -> None:
    result = fata_cli("inspect", "--json", str(tiny_image))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["manifest"]["name"] == "tiny"
    data = bytearray(tiny_image.read_bytes())
    info = image.inspect(tiny_image)
    big = max(info["manifest"]["files"], key=lambda e: e["size"])["path"]
    from .conftest import member_data_offset

    data[member_data_offset(tiny_image, big)] ^= 1
    bad = tmp_path / "bad.fata"
    bad.write_bytes(bytes(data))
    report = image.inspect(bad)  # still readable, with the verdict
    assert report["verified"] is False and big in report["verification"]


def _run_tests(appliance: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{appliance}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir",
         str(appliance), str(appliance / "tests")],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=appliance, env=env,
    )


def test_new_makes_a_working_fork(tiny_dir: Path, tmp_path: Path) -> None:
    fork = image.new("echo", tiny_dir, tmp_path / "echo")
    assert (fork / "fata_echo" / "unikernel.py").is_file()
    assert not (fork / "fata_tiny").exists()
    texts = "".join(p.read_text() for p in fork.rglob("*") if p.is_file())
    assert "fata_tiny" not in texts and "fata-tiny" not in texts
    readme = (fork / "README.md").read_text()
    assert "fata-echo" in readme and "fata_echo_bench" in readme
    assert 'name="echo"' in (fork / "config.py").read_text()
    # Builds, runs, and passes its own tests.
    built = image.build(fork, {}, tmp_path / "out", log=lambda *a: None)
    assert built.name == "echo-0.1.0-unix.fata"
    result = fata_cli("run", str(built))
    assert result.returncode == 0 and "fata_echo says hello from the data" in result.stderr
    tests = _run_tests(fork, 120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout


def test_new_refuses_bad_requests(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(image.ImageError, match="lowercase"):
        image.new("Bad-Name", tiny_dir, tmp_path / "x")
    with pytest.raises(image.ImageError, match="other than 'tiny'"):
        image.new("tiny", tiny_dir, tmp_path / "y")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(image.ImageError, match="not empty"):
        image.new("fork", tiny_dir, tmp_path / "full")
    result = fata_cli("new", "fork", "--from", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and result.stderr.startswith("fata: ")


@contextlib.contextmanager
def _serving(built: Path, port: int, answers: Callable[[], bool], what: str) -> Iterator[None]:
    """Run the image on 127.0.0.1:``port`` until ``answers()`` holds; stop it afterwards."""
    launch = image.prepare(built, ["--", "--listen", "127.0.0.1", "--port", str(port)])
    proc = subprocess.Popen(launch.argv, env=launch.env, executable=launch.executable,
                            pass_fds=launch.pass_fds, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    launch.close()
    try:
        def up() -> bool:
            assert proc.poll() is None, f"the forked image exited: {proc.communicate()[1]}"
            return answers()

        wait_until(up, timeout=30, what=what)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.tool("dig")
def test_forked_dns_appliance_builds_runs_and_answers(tmp_path: Path) -> None:
    root = project_root()
    assert root is not None, "these tests run from the Fata repository"
    dns_dir = root / "appliances" / "dns"
    fork = image.new("mydns", dns_dir, tmp_path / "mydns")
    assert (fork / "fata_mydns" / "unikernel.py").is_file()
    built = image.build(fork, {"net": "socket"}, tmp_path / "out", log=lambda *a: None)
    port = free_port()
    answer = ""

    def answers() -> bool:
        nonlocal answer
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "www.example.org", "A",
                              "+short", "+time=1", "+tries=1"],
                             capture_output=True, text=True, timeout=10, check=False)
        answer = out.stdout.strip()
        return out.returncode == 0 and bool(answer)

    with _serving(built, port, answers, "the forked DNS image answering"):
        assert answer == "192.0.2.80", answer
    assert any((fork / "tests").glob("test_*.py")), "fata new carries the tests along"
    tests = _run_tests(fork, 300)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.tool("curl")
def test_forked_www_appliance_builds_runs_and_serves(tmp_path: Path) -> None:
    """``fata new mysite --from www``: the fork is renamed, builds, serves its baked site
    (its own README, rendered at build time) to curl, and carries its tests, which pass."""
    root = project_root()
    assert root is not None, "these tests run from the Fata repository"
    fork = image.new("mysite", root / "appliances" / "www", tmp_path / "mysite")
    assert (fork / "fata_mysite" / "unikernel.py").is_file()
    assert not (fork / "fata_www").exists()
    built = image.build(fork, {"net": "socket"}, tmp_path / "out", log=lambda *a: None)
    port = free_port()
    # outside the repository, the fork's default site is its own README, rendered
    from fata_www.render import render

    render(tmp_path / "expected", fork)
    expected = (tmp_path / "expected" / "index.html").read_bytes()
    assert b"fata_mysite" in expected or b"mysite" in expected
    body = b""

    def answers() -> bool:
        nonlocal body
        out = subprocess.run(["curl", "-s", "--max-time", "2", "-o", "-", "-w",
                              "\n%{http_code}", f"http://127.0.0.1:{port}/"],
                             capture_output=True, timeout=10, check=False)
        body = out.stdout[: -len(b"\n200")]
        return out.returncode == 0 and out.stdout.endswith(b"\n200")

    with _serving(built, port, answers, "the forked www image serving"):
        assert body == expected
    tests = _run_tests(fork, 300)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
