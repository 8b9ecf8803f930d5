"""Running images: sealed imports, baked data and arguments, extension modules, and refusals."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from fata import image
from fata.image.archive import Member, write_archive
from fata.image.keys import dev_signing_key
from fata.image.manifest import MANIFEST_NAME, SIGNATURE_NAME, dumps, signature_bytes

from .conftest import fata_cli, flip_byte, member_data_offset


def run(path: Path, *argv: str) -> subprocess.CompletedProcess:
    launch = image.prepare(path, list(argv))
    try:
        return subprocess.run(launch.argv, env=launch.env, executable=launch.executable,
                              pass_fds=launch.pass_fds, capture_output=True, text=True,
                              timeout=60, check=False)
    finally:
        launch.close()


def test_run_uses_baked_data_and_arguments(tiny_image: Path) -> None:
    result = fata_cli("run", str(tiny_image))
    assert result.returncode == 0, result.stderr
    assert "fata_tiny says hello from the data" in result.stderr + result.stdout


def test_import_outside_the_manifest_fails_clearly(tiny_image: Path) -> None:
    result = fata_cli("run", str(tiny_image), "--", "--mode", "import")
    assert result.returncode == 1
    assert "module 'xml' is not in this image's manifest" in result.stderr


def test_a_running_image_sees_only_itself(tiny_image: Path) -> None:
    result = run(tiny_image, "--", "--mode", "paths")
    assert result.returncode == 0, result.stderr
    launch = image.prepare(tiny_image, [])
    root = str(launch.root)
    paths = [line.split(" ", 1)[1] for line in result.stdout.splitlines()
             if line.startswith("PATH ")]
    assert paths == [f"{root}/lib/python3.11", f"{root}/lib/python3.11/lib-dynload"]
    origins = [line.split(" ", 2)[2] for line in result.stdout.splitlines()
               if line.startswith("MODULE ")]
    for origin in origins:
        assert origin in ("built-in", "frozen", "None") or origin.startswith(root), origin
    files = {e["path"] for e in image.verify(tiny_image)["files"]}
    loaded = {o.removeprefix(root + "/") for o in origins if o.startswith(root)}
    assert loaded <= files, loaded - files


def test_a_resource_warning_with_a_source_in_an_image(tiny_image: Path) -> None:
    """Images leave out tracemalloc (closure.LAZY_EXCLUDED_FROM): warnings must still be
    shown, the module's own `except Exception` around that import carrying on without it."""
    names = {f["path"] for f in json.loads(zipfile.ZipFile(tiny_image).read("MANIFEST.json"))["files"]}
    assert not any("tracemalloc" in n or "/statistics." in n for n in names)
    result = run(tiny_image, "--", "--mode", "warn")
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning: unclosed thing" in result.stderr
    assert "after the warning" in result.stdout


def test_exit_status_and_failure_of_the_appliance(tiny_image: Path) -> None:
    assert run(tiny_image, "--", "--mode", "fail").returncode != 0
    bad_arg = run(tiny_image, "--", "--no-such-option")
    assert bad_arg.returncode == 2 and "--no-such-option" in bad_arg.stderr


def test_extension_modules_work_from_an_image(crypto_image: Path) -> None:
    files = {e["path"]: e for e in image.verify(crypto_image)["files"]}
    rust = "lib/python3.11/cryptography/hazmat/bindings/_rust.abi3.so"
    assert files[rust]["kind"] == "third-party"
    result = run(crypto_image)
    assert result.returncode == 0, result.stderr
    assert "crypto ok appliance" in result.stderr


def test_run_refuses_a_modified_image(tiny_image: Path, tmp_path: Path) -> None:
    member = "lib/python3.11/fata/runtime/boot.pyc"
    bad = flip_byte(tiny_image, tmp_path / "bad.fata", member_data_offset(tiny_image, member))
    result = fata_cli("run", str(bad))
    assert result.returncode == 1
    assert member in result.stderr and "Traceback" not in result.stderr
    assert "starting" not in result.stderr


def test_tampered_extraction_cache_is_repaired(tiny_image: Path) -> None:
    root = image.prepare(tiny_image, []).root
    target = root / "lib/python3.11/fata_tiny/greeting.pyc"
    target.chmod(0o644)  # the extraction is read-only
    target.write_bytes(b"tampered")
    assert image.prepare(tiny_image, []).root == root
    assert target.read_bytes() != b"tampered"
    assert run(tiny_image).returncode == 0


def _with_python(tiny_image: Path, path: Path, own_interpreter: bool) -> Path:
    """A copy of ``tiny_image`` whose manifest says it was built for Python 3.99, re-signed;
    without its own interpreter when ``own_interpreter`` is false."""
    with zipfile.ZipFile(tiny_image) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members[MANIFEST_NAME])
    manifest["python"]["version"] = "3.99"
    if not own_interpreter:
        manifest.pop("interpreter")
    data = dumps(manifest)
    key = dev_signing_key()
    members[MANIFEST_NAME] = data
    members[SIGNATURE_NAME] = signature_bytes(key.key_id, key.sign(data))
    write_archive(path, [Member(n, d) for n, d in members.items()], 315532800)
    assert image.verify(path)["python"]["version"] == "3.99"
    return path


def test_another_python_is_refused_without_its_own_interpreter(tiny_image: Path,
                                                               tmp_path: Path) -> None:
    other = _with_python(tiny_image, tmp_path / "other.fata", own_interpreter=False)
    with pytest.raises(image.ImageError, match=r"built for cpython 3\.99"):
        image.prepare(other, [])


def test_another_python_runs_on_the_images_own_interpreter(tiny_image: Path,
                                                           tmp_path: Path) -> None:
    other = _with_python(tiny_image, tmp_path / "other.fata", own_interpreter=True)
    result = run(other)
    assert result.returncode == 0, result.stderr
    assert "fata_tiny says hello from the data" in result.stderr


def test_run_an_appliance_directory(tiny_dir: Path) -> None:
    result = fata_cli("run", str(tiny_dir), "--", "--mode", "hello")
    assert result.returncode == 0, result.stderr
    assert "fata_tiny says hello from the data" in result.stderr


def test_run_bad_targets_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.fata").write_bytes(b"PK\x03\x04 not really")
    for target in (tmp_path / "x.fata", tmp_path / "missing.fata"):
        result = fata_cli("run", str(target))
        assert result.returncode != 0
        assert result.stderr.startswith("fata: ") and result.stderr.count("\n") == 1


def test_extraction_cache_keeps_the_most_recent(tmp_path: Path) -> None:
    import os

    from fata.image.run import prune

    for i in range(5):
        (tmp_path / f"img{i}").mkdir()
        os.utime(tmp_path / f"img{i}", (1000 + i, 1000 + i))
    (tmp_path / ".partial.tmp").mkdir()
    prune(tmp_path, keep=tmp_path / "img0", limit=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial.tmp", "img0", "img3", "img4"]
