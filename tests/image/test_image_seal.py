"""The seal holds at run time: a run executes and reads only bytes it checked against the
signed manifest, whatever was done to the extraction in the cache.

Two layers are tested separately.  ``fata run`` notices a rewritten file by its stat (a
rewrite changes the ctime even when size and mtime are put back) and repairs the
extraction before anything starts.  Where that is bypassed (the test forges the record of
what was verified, as a change that also kept the ctime would), the started process's
importer (``sealboot``) hashes every member before using it and refuses one that differs.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from fata import image
from fata.image import run as run_mod

from .conftest import fata_cli

GREETING = "lib/python3.11/fata_tiny/greeting.pyc"


def extraction(path: Path) -> Path:
    launch = image.prepare(path, [])
    launch.close()
    return launch.root


def tamper(path: Path, change: Callable[[bytes], bytes]) -> bytes:
    """Rewrite ``path`` with ``change`` applied, keeping its size, mode and mtime (as one
    hiding a change would); returns the original bytes."""
    st = os.stat(path)
    original = path.read_bytes()
    changed = change(original)
    assert changed != original and len(changed) == len(original)
    os.chmod(path, st.st_mode | stat.S_IWUSR)
    path.write_bytes(changed)
    os.chmod(path, st.st_mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    return original


def loud_greeting(data: bytes) -> bytes:
    """The greeting module's bytecode, still valid, saying something else."""
    assert data.count(b"fata_tiny says ") == 1
    return data.replace(b"fata_tiny says ", b"fata_tiny SAYS ")


def flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def forge_record(path: Path) -> None:
    """Make ``fata run``'s record of the verified extraction match its files as they are
    now, as if the change had kept every stat field: only the started process's own check
    is left to catch it."""
    record = run_mod._verified_record(run_mod._file_digest(path))
    data = json.loads(record.read_text())
    root = run_mod.cache_home() / "images" / data["root"]
    data["stat"] = run_mod._stat_of(root, image.verify(path))
    record.write_text(json.dumps(data))


def test_extraction_is_read_only(tiny_image: Path) -> None:
    root = extraction(tiny_image)
    for dirpath, _dirs, files in os.walk(root):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o555, dirpath
        for name in files:
            mode = stat.S_IMODE(os.stat(Path(dirpath) / name).st_mode)
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            executable = ".so" in name or rel.startswith("interp/") or rel == "launch"
            assert mode == (0o555 if executable else 0o444), (dirpath, name)


def test_same_size_and_mtime_is_repaired_before_it_runs(tiny_image: Path) -> None:
    root = extraction(tiny_image)
    original = tamper(root / GREETING, loud_greeting)
    result = fata_cli("run", str(tiny_image))
    assert result.returncode == 0, result.stderr
    assert "fata_tiny says hello from the data" in result.stderr
    assert "SAYS" not in result.stderr
    assert (root / GREETING).read_bytes() == original


def test_a_change_the_stat_check_misses_is_refused_then_repaired(tiny_image: Path) -> None:
    root = extraction(tiny_image)
    original = tamper(root / GREETING, loud_greeting)
    forge_record(tiny_image)
    refused = fata_cli("run", str(tiny_image))
    assert refused.returncode == 1
    assert (f"fata: {GREETING} in the extracted image {root} differs from the image's "
            f"signed manifest") in refused.stderr
    assert "SAYS" not in refused.stderr and "starting" not in refused.stderr
    assert "Traceback" not in refused.stderr
    # the refusal dropped the record: the next run verifies everything and re-extracts
    again = fata_cli("run", str(tiny_image))
    assert again.returncode == 0, again.stderr
    assert "fata_tiny says hello from the data" in again.stderr
    assert (root / GREETING).read_bytes() == original


def test_a_fresh_build_of_the_same_sources_does_not_run_a_changed_cache(
    tiny_dir: Path, tmp_path: Path
) -> None:
    def build() -> Path:
        done = fata_cli("build", str(tiny_dir), "--out", str(tmp_path))
        assert done.returncode == 0, done.stderr
        return Path(done.stdout.strip().splitlines()[-1])

    built = build()
    root = extraction(built)
    tamper(root / GREETING, loud_greeting)
    rebuilt = build()  # same sources, same bytes, same extraction directory; warms it
    assert rebuilt == built and extraction(rebuilt) == root
    result = fata_cli("run", str(rebuilt))
    assert result.returncode == 0, result.stderr
    assert "fata_tiny says hello" in result.stderr and "SAYS" not in result.stderr

    tamper(root / GREETING, loud_greeting)
    forge_record(built)
    build()
    refused = fata_cli("run", str(rebuilt))
    assert refused.returncode == 1 and GREETING in refused.stderr
    assert "SAYS" not in refused.stderr


def _loaded_extension(tiny_image: Path) -> str:
    """A lib-dynload extension module member that the tiny appliance loads at start."""
    result = fata_cli("run", str(tiny_image), "--", "--mode", "paths")
    assert result.returncode == 0, result.stderr
    root = str(extraction(tiny_image))
    for line in result.stdout.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "MODULE" and "/lib-dynload/" in parts[2] and parts[2].endswith(".so"):
            return parts[2].removeprefix(root + "/")
    raise AssertionError("the tiny appliance loads no extension module from lib-dynload")


def test_a_changed_extension_module_is_refused_or_repaired(tiny_image: Path) -> None:
    member = _loaded_extension(tiny_image)
    root = extraction(tiny_image)
    original = tamper(root / member, flip_middle)
    forge_record(tiny_image)
    refused = fata_cli("run", str(tiny_image))
    assert refused.returncode == 1
    assert f"fata: {member} in the extracted image" in refused.stderr
    assert "starting" not in refused.stderr

    tamper(root / member, flip_middle)  # back, then changed again, now with the real record
    extraction(tiny_image)
    tamper(root / member, flip_middle)
    repaired = fata_cli("run", str(tiny_image))
    assert repaired.returncode == 0, repaired.stderr
    assert (root / member).read_bytes() == original


def test_a_changed_third_party_extension_is_refused(crypto_image: Path) -> None:
    member = "lib/python3.11/cryptography/hazmat/bindings/_rust.abi3.so"
    root = extraction(crypto_image)
    tamper(root / member, flip_middle)
    forge_record(crypto_image)
    refused = fata_cli("run", str(crypto_image))
    assert refused.returncode == 1
    assert f"{member} in the extracted image" in refused.stderr
    assert "crypto ok" not in refused.stderr
    repaired = fata_cli("run", str(crypto_image))
    assert repaired.returncode == 0 and "crypto ok appliance" in repaired.stderr


def test_extension_modules_run_from_memory_not_the_cache(tiny_image: Path) -> None:
    root = str(extraction(tiny_image))
    result = fata_cli("run", str(tiny_image), "--", "--mode", "maps")
    assert result.returncode == 0, result.stderr
    mapped = [line.removeprefix("MAP ") for line in result.stdout.splitlines()]
    assert any(m.startswith("/memfd:") for m in mapped), mapped
    # the image's own interpreter and libraries are mapped by its loader from the
    # extraction (hashed before the execve); its extension modules come from memfds
    assert not [m for m in mapped if m.startswith(root) and
                not m.startswith(f"{root}/interp/")], mapped


def test_changed_baked_data_is_refused_before_the_appliance_starts(tiny_image: Path) -> None:
    root = extraction(tiny_image)
    data = root / "data/data/greeting.txt"
    tamper(data, lambda b: b.replace(b"hello", b"HELLO"))
    forge_record(tiny_image)
    refused = fata_cli("run", str(tiny_image))
    assert refused.returncode == 1
    assert "data/data/greeting.txt in the extracted image" in refused.stderr
    assert "starting" not in refused.stderr and "HELLO" not in refused.stderr
    assert fata_cli("run", str(tiny_image)).returncode == 0
    assert data.read_text() == "hello from the data\n"


def test_baked_data_changed_during_the_run_is_refused_not_served(tiny_image: Path) -> None:
    """The appliance changes its own data file in the extraction after the start-up check,
    then reads it through the KV device: the read is refused (the seal's hash), never the
    changed bytes; the next run repairs the extraction."""
    extraction(tiny_image)
    result = fata_cli("run", str(tiny_image), "--", "--mode", "midrun")
    out = result.stdout + result.stderr
    assert "REFUSED SealBroken data/data/greeting.txt in the extracted image" in out, out
    assert "READ" not in out
    again = fata_cli("run", str(tiny_image))
    assert again.returncode == 0 and "fata_tiny says hello from the data" in again.stdout + again.stderr


def test_a_module_added_to_the_cache_is_not_importable(tiny_image: Path) -> None:
    """The extraction's library directory is not on any import path: only members are."""
    root = extraction(tiny_image)
    lib = root / "lib/python3.11"
    os.chmod(lib, 0o755)
    try:
        for pkg in ("xml", "xml/dom"):
            (lib / pkg).mkdir()
            shutil.copy(lib / "fata_tiny/__init__.pyc", lib / pkg / "__init__.pyc")
        result = fata_cli("run", str(tiny_image), "--", "--mode", "import")
    finally:
        shutil.rmtree(lib / "xml")
        os.chmod(lib, 0o555)
    assert result.returncode == 1
    assert "module 'xml' is not in this image's manifest" in result.stderr
