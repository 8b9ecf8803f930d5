"""Deterministic, sourceless bytecode for images, memoised by content.

Each module is compiled once per (source, file name, interpreter) into an *unchecked
hash-based* pyc (PEP 552): its header holds a hash of the source, never a timestamp, so the
same source always gives the same bytes.  The file name recorded in the code objects is the
module's path inside the image (``fata/runtime/boot.py``), never a path of the build
machine, which keeps images byte-identical wherever they are built and tracebacks readable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
from pathlib import Path

from fata.image.errors import ImageError
from fata.image.paths import cache_home

_MAGIC = importlib.util.MAGIC_NUMBER
_FLAGS_UNCHECKED_HASH = 0b01  # hash-based, check_source off


def pyc_bytes(source: bytes, display_name: str) -> bytes:
    """The pyc for ``source`` as it will appear in an image, from the cache when there."""
    key = hashlib.sha256(_MAGIC + display_name.encode() + b"\0" + source).hexdigest()
    cache_file = cache_home() / "pyc" / key[:2] / f"{key}.pyc"
    try:
        data = cache_file.read_bytes()
    except OSError:
        data = None
    if data is not None and data[:4] == _MAGIC:
        return data
    data = compile_pyc(source, display_name)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{key}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache only costs time
    return data


def compile_pyc(source: bytes, display_name: str) -> bytes:
    """Compile ``source`` to an unchecked-hash pyc (no cache)."""
    try:
        code = compile(source, display_name, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError) as exc:
        raise ImageError(f"{display_name}: cannot compile: {exc}") from None
    header = bytearray(_MAGIC)
    header += _FLAGS_UNCHECKED_HASH.to_bytes(4, "little")
    header += importlib.util.source_hash(source)
    return bytes(header) + marshal.dumps(code)


def check_bytecode(data: bytes, path: Path) -> bytes:
    """A sourceless ``.pyc`` found on the build path, accepted only for this interpreter."""
    if data[:4] != _MAGIC:
        raise ImageError(f"{path}: bytecode for another Python version")
    return data
