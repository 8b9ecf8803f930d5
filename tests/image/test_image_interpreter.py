"""The interpreter's ELF closure (``fata.image.interpreter``), checked against the system's
own loader: ``ldd`` lists the same objects, and the closure alone, in a root holding
nothing else, runs Python."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from fata.image.errors import ImageError
from fata.image.interpreter import elf_closure, elf_deps, origin, python_binary, system_dirs


def _ldd(path: Path) -> dict[str, Path]:
    """``ldd``'s answer: soname -> resolved path (vdso and the loader left out)."""
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True)
    out = {}
    for line in done.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(0x", line)
        if m:
            out[m.group(1)] = Path(m.group(2))
    return out


def _ldd_loader(path: Path) -> Path:
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True)
    return Path(next(m.group(1) for line in done.stdout.splitlines()
                     if (m := re.match(r"\s*(/\S*ld-linux\S*) \(0x", line))))


def _extension(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__)


@pytest.mark.tool("ldd")
@pytest.mark.parametrize("target", ["python", "_ssl", "_hashlib", "zlib"])
def test_closure_is_what_the_loader_loads(target: str) -> None:
    path = python_binary() if target == "python" else _extension(target)
    closure = elf_closure([path])
    want = _ldd(path)
    loader = _ldd_loader(path).resolve()
    assert not closure.missing
    # libc names the loader too; ldd lists it on a line of its own
    libraries = {k: v for k, v in closure.libraries.items() if v.resolve() != loader}
    assert set(libraries) == set(want)
    for soname, found in libraries.items():
        assert found.resolve() == want[soname].resolve(), soname
    if target == "python":
        assert closure.loader is not None
        assert closure.loader.resolve() == loader


def test_elf_deps_reads_needed_and_refuses_a_non_elf(tmp_path) -> None:
    deps = elf_deps(python_binary())
    assert "libc.so.6" in deps.needed and deps.interp and deps.interp.startswith("/")
    (tmp_path / "x.so").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(ImageError, match=r"cannot read .*x\.so as an ELF file"):
        elf_deps(tmp_path / "x.so")


def test_system_dirs_follow_includes(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.conf").write_text("/opt/b # comment\n")
    (tmp_path / "d" / "a.conf").write_text("/opt/a\n")
    conf = tmp_path / "ld.so.conf"
    conf.write_text("include d/*.conf\n/opt/c\n")
    dirs = system_dirs(conf)
    assert dirs[:3] == ("/opt/a", "/opt/b", "/opt/c") and "/usr/lib" in dirs


@pytest.mark.tool("dpkg-query")
def test_origin_names_the_debian_package() -> None:
    libc = elf_closure([python_binary()]).libraries["libc.so.6"]
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libc6"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(rf"libc6(:\w+)? {re.escape(version)}", origin(libc)), origin(libc)
    assert origin(Path(__file__)).startswith("not from a package: ")


@pytest.mark.root
@pytest.mark.tool("chroot")
def test_the_closure_alone_runs_python_in_an_empty_root(tmp_path) -> None:
    """A root holding only the binary, its closure, the loader and the one stdlib package
    Python needs to start (``encodings``): Python runs there and reports itself."""
    root = tmp_path / "root"
    binary = python_binary()
    closure = elf_closure([binary])
    for path in [binary, closure.loader, *closure.libraries.values()]:
        assert path is not None
        target = root / str(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path.resolve(), target)
        if path != path.resolve():  # the loader and sonames are often symlinks: keep names
            real = root / str(path.resolve()).lstrip("/")
            real.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path.resolve(), real)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    home = root / "py"
    shutil.copytree(stdlib / "encodings", home / "lib" / f"python{sys.version_info[0]}."
                    f"{sys.version_info[1]}" / "encodings")
    assert not (root / "usr" / "bin").exists()
    done = subprocess.run(
        [shutil.which("chroot") or "/usr/sbin/chroot", str(root), str(binary), "-S", "-s", "-c",
         "import sys; print(sys.version.split()[0], len(sys.builtin_module_names) > 0)"],
        env={"PYTHONHOME": "/py", "PATH": ""}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [sys.version.split()[0], "True"]
