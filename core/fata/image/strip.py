"""Stripping the shared objects an image carries, deterministically.

Extension modules and the libraries wheels bundle are built with symbol tables and often
debug sections (``unicodedata`` is 1.25 MB, 1.14 MB stripped; ``_datetime`` 565 KB,
117 KB): none of it is used when the module runs.  ``fata build`` puts each one in the
image through GNU ``strip --strip-unneeded`` (binutils), which keeps what dynamic loading
needs (the dynamic symbol table, relocations) and drops ``.symtab``, ``.strtab`` and the
``.debug_*`` sections.  Its output depends only on its input and the binutils version, so
images stay byte-identical on rebuild.  Results are memoised by content in the user's
cache, so a rebuild does not strip again.

Without ``strip`` on the build machine the objects go in as they are and the build says
so (the manifest records it): images still work, only larger.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from fata.image.errors import ImageError
from fata.image.paths import cache_home

STRIP_ARGS = ("--strip-unneeded",)


def strip_tool() -> str | None:
    """The ``strip`` program to use (``$STRIP``, else ``strip`` on ``PATH``), or None."""
    env = os.environ.get("STRIP")
    if env:
        return shutil.which(env)
    return shutil.which("strip")


def tool_version(tool: str) -> str:
    """The first line of ``strip --version`` (recorded in the manifest: stripped bytes
    depend on it)."""
    try:
        result = subprocess.run([tool, "--version"], capture_output=True, text=True,
                                timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return tool
    return (result.stdout.splitlines() or [tool])[0].strip()


def strip_bytes(data: bytes, tool: str) -> bytes:
    """``data`` (an ELF shared object) stripped of what running it does not need."""
    if data[:4] != b"\x7fELF":
        return data  # not ELF (a test stub, a script): nothing to strip
    key = hashlib.sha256(tool_version(tool).encode() + b"\0" + data).hexdigest()
    cache_file = cache_home() / "strip" / key[:2] / key
    try:
        return cache_file.read_bytes()
    except OSError:
        pass
    with tempfile.TemporaryDirectory(prefix="fata-strip-") as tmp:
        path = Path(tmp) / "object.so"
        path.write_bytes(data)
        try:
            result = subprocess.run([tool, *STRIP_ARGS, str(path)], capture_output=True,
                                    text=True, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImageError(f"{tool} failed: {exc}") from None
        if result.returncode != 0:
            raise ImageError(f"{tool} {' '.join(STRIP_ARGS)} failed: {result.stderr.strip()}")
        stripped = path.read_bytes()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = cache_file.with_name(f".{key}.{os.getpid()}.tmp")
        tmp_file.write_bytes(stripped)
        os.replace(tmp_file, cache_file)
    except OSError:
        pass  # a read-only cache only costs time
    return stripped


def elf_section_names(data: bytes) -> list[str]:
    """The section names of an ELF file (64- or 32-bit, either byte order), read from its
    section header table: enough to check what stripping left, without binutils."""
    import struct

    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(endian + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(endian + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", data, 0x2E)

    def header(i: int) -> tuple[int, int, int]:  # (name offset, file offset, size)
        base = shoff + i * shentsize
        if is64:
            name, = struct.unpack_from(endian + "I", data, base)
            offset, size = struct.unpack_from(endian + "QQ", data, base + 0x18)
        else:
            name, = struct.unpack_from(endian + "I", data, base)
            offset, size = struct.unpack_from(endian + "II", data, base + 0x10)
        return name, offset, size

    _, str_offset, str_size = header(shstrndx)
    strings = data[str_offset:str_offset + str_size]
    names = []
    for i in range(shnum):
        name_offset = header(i)[0]
        end = strings.find(b"\0", name_offset)
        names.append(strings[name_offset:end].decode("ascii", "replace"))
    return names
