"""The interpreter an image carries: the Python binary, libpython and their ELF closure.

An image that runs on the host's Python is refused on any other, and depends on the host's
libc, libssl and libz besides.  A self-contained image carries its interpreter: the
binary, the shared objects it and the image's extension modules need (found by reading
each ELF file's ``DT_NEEDED`` entries with pyelftools, resolved the way the dynamic loader
resolves them: ``DT_RPATH`` when there is no ``DT_RUNPATH``, then ``DT_RUNPATH``, then
the ``/etc/ld.so.conf`` directories and the system defaults), and the dynamic loader named
by the binary's ``PT_INTERP``.  Reading the ELF files rather than parsing ``ldd`` output
keeps the build from running any of the binaries it packs, and gives the same closure on
a machine whose loader prints differently; a test checks it against ``ldd``.

Each file's origin is recorded: the Debian package and version that installed it
(``dpkg-query``), or "not from a package" with its path (an interpreter built by pyenv, say).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from fata.image.errors import ImageError

DEFAULT_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")
"""Searched last, as the loader does after its cache (``ld.so(8)``)."""
LD_SO_CONF = Path("/etc/ld.so.conf")


@dataclass(frozen=True)
class ElfDeps:
    """What one ELF file asks of the dynamic loader."""

    needed: tuple[str, ...]
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    interp: str | None = None


def elf_deps(path: Path) -> ElfDeps:
    """The ``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH`` entries and ``PT_INTERP`` of ``path``
    (``$ORIGIN`` expanded); ImageError if it is not an ELF file."""
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            interp = None
            for segment in elf.iter_segments():
                if segment["p_type"] == "PT_INTERP":
                    interp = segment.get_interp_name()
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_RPATH":
                        rpath.extend(tag.rpath.split(":"))
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        runpath.extend(tag.runpath.split(":"))
    except (OSError, ELFError) as exc:
        raise ImageError(f"cannot read {path} as an ELF file: {exc}") from None
    origin = str(Path(path).resolve().parent)

    def expand(dirs: list[str]) -> tuple[str, ...]:
        return tuple(d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
                     for d in dirs if d)

    return ElfDeps(tuple(needed), expand(rpath), expand(runpath), interp)


@cache
def system_dirs(conf: Path = LD_SO_CONF) -> tuple[str, ...]:
    """The directories of ``/etc/ld.so.conf`` (its ``include`` globs followed), then the
    defaults: what the loader's cache holds, in its order."""
    dirs: list[str] = []

    def read(path: Path, depth: int) -> None:
        if depth > 8:
            return
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                if not os.path.isabs(pattern):
                    pattern = str(path.parent / pattern)
                for found in sorted(glob.glob(pattern)):
                    read(Path(found), depth + 1)
            elif line:
                dirs.append(line)

    read(conf, 0)
    return tuple(dict.fromkeys([*dirs, *DEFAULT_DIRS]))


def resolve(soname: str, deps: ElfDeps, search: Sequence[str]) -> Path | None:
    """Where the loader finds ``soname`` for an object with ``deps``: a name with a slash
    as it is; else ``DT_RPATH`` (only without ``DT_RUNPATH``), ``DT_RUNPATH``, ``search``."""
    if "/" in soname:
        return Path(soname) if os.path.exists(soname) else None
    dirs = [*(deps.rpath if not deps.runpath else ()), *deps.runpath, *search]
    for directory in dirs:
        candidate = Path(directory) / soname
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Closure:
    """The shared objects some ELF files need, by soname, and the loader they name."""

    libraries: dict[str, Path] = field(default_factory=dict)
    loader: Path | None = None
    missing: dict[str, str] = field(default_factory=dict)
    """Sonames nothing resolved, with the file that needs them."""


def elf_closure(roots: Iterable[Path], search: Sequence[str] | None = None) -> Closure:
    """Every shared object ``roots`` need, transitively (breadth first, by soname: the
    loader loads one object per soname)."""
    search = system_dirs() if search is None else search
    out = Closure()
    queue = list(roots)
    seen: set[Path] = set()
    while queue:
        path = queue.pop(0)
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        deps = elf_deps(path)
        if deps.interp and out.loader is None:
            out.loader = Path(deps.interp)
        for soname in deps.needed:
            if soname in out.libraries:
                continue
            found = resolve(soname, deps, search)
            if found is None:
                out.missing.setdefault(soname, str(path))
                continue
            out.libraries[soname] = found
            queue.append(found)
    return out


@cache
def origin(path: Path) -> str:
    """The Debian package and version that installed ``path`` (``libc6 2.36-9+deb12u14``),
    or ``not from a package: PATH``.  On a merged-/usr system dpkg may know the file by its
    other name (``/lib/...`` for ``/usr/lib/...``), so both are asked."""
    names = [str(path), str(path.resolve())]
    for name in list(names):
        if name.startswith("/usr/lib/"):
            names.append(name[len("/usr"):])
        elif name.startswith("/lib/"):
            names.append("/usr" + name)
    for name in dict.fromkeys(names):
        try:
            done = subprocess.run(["dpkg-query", "-S", name], capture_output=True, text=True,
                                  timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            break
        if done.returncode == 0 and ":" in done.stdout:
            package = done.stdout.split(": ", 1)[0].split(",")[0].strip()
            version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                     capture_output=True, text=True, timeout=30, check=False)
            return f"{package} {version.stdout.strip()}".strip()
    return f"not from a package: {path.resolve()}"


def python_binary() -> Path:
    """The interpreter running ``fata``: its real file (not a venv's symlink)."""
    return Path(os.path.realpath(sys.executable))


# Where a self-contained image keeps its interpreter: the binary under ``interp/bin/``, the
# shared objects and the dynamic loader under ``interp/lib/``, each by the name the loader
# asks for (the soname), and a launcher at the top that starts an extraction without fata.
PREFIX = "interp"
BIN_DIR = f"{PREFIX}/bin"
LIB_DIR = f"{PREFIX}/lib"
LAUNCHER = "launch"


@dataclass(frozen=True)
class BundledFile:
    """One file of an image's interpreter: where it goes and where it comes from."""

    member: str
    source: Path
    role: str  # "binary" | "library" | "loader"


def bundle(extensions: Iterable[Path], binary: Path | None = None) -> list[BundledFile]:
    """The interpreter files an image holding ``extensions`` needs: the Python binary, the
    ELF closure of it and of every extension module, and the dynamic loader (sorted by
    member, so a rebuild gives the same order); ImageError if a library cannot be found."""
    binary = python_binary() if binary is None else binary
    closure = elf_closure([binary, *extensions])
    if closure.missing:
        needs = ", ".join(f"{s} (needed by {p})" for s, p in sorted(closure.missing.items()))
        raise ImageError(f"the interpreter's shared objects cannot all be found: {needs}")
    if closure.loader is None:
        raise ImageError(f"{binary} names no dynamic loader (PT_INTERP): a static Python "
                         f"cannot be bundled yet")
    loader = closure.loader.name
    files = [BundledFile(f"{BIN_DIR}/{binary.name}", binary, "binary"),
             BundledFile(f"{LIB_DIR}/{loader}", closure.loader, "loader")]
    for soname, path in closure.libraries.items():
        if soname == loader or path.resolve() == closure.loader.resolve():
            continue  # libc names the loader too: it is bundled once, as the loader
        files.append(BundledFile(f"{LIB_DIR}/{soname}", path, "library"))
    return sorted(files, key=lambda f: f.member)


_LAUNCHER = '''\
#!/bin/sh
# Start this extracted Fata image without fata: its own dynamic loader, shared libraries
# and Python ({binary}), nothing of the host's.  It runs the extraction as it is:
# nothing here checks it against the signed manifest (`fata verify IMAGE` does that, and
# `fata run IMAGE` checks every byte it runs), so run it from a trusted, read-only copy.
#   ./launch [-- ARGS...]     as `fata run IMAGE [-- ARGS...]` (ARGS: the appliance's own)
case $0 in */*) here=${{0%/*}} ;; *) here=. ;; esac
here=$(cd "$here" && pwd -P) || exit 1
for v in $(env | sed -n 's/^\\(PYTHON[A-Za-z0-9_]*\\)=.*/\\1/p'); do unset "$v"; done
export PYTHONHOME="$here" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUTF8=1
exec "$here/{loader}" --library-path "$here/{lib}" --argv0 "$here/{binary}" \\
    "$here/{binary}" -X frozen_modules=on -S -s -B -P "$here/{main}" "$@"
'''


def launcher(section: dict, main: str) -> bytes:
    """The ``launch`` script of an image with the interpreter ``section``."""
    return _LAUNCHER.format(binary=section["binary"], loader=section["loader"],
                            lib=section["lib"], main=main).encode()
