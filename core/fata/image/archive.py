"""The image container: a deterministic zip file, written by hand, read with ``zipfile``.

Zip gives random access (``inspect`` reads the manifest without the rest) and every tool
can list it.  The writer is ours rather than ``zipfile``'s so that every byte is decided
here: members in the order given, one fixed timestamp, normalised permissions (0644, or 0755
for extension modules), no extra fields, raw deflate at a fixed level (9, the smallest).
Deflating the large extension modules (cryptography's is 14 MB) is memoised by content so
that rebuilding an image costs little more than hashing it.

Reading checks what a tampered or truncated file could use against us: duplicate or unsafe
member names, bad CRCs and broken deflate streams all become an ``ImageError`` naming the
member.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from fata.image.errors import ImageError
from fata.image.paths import cache_home

DEFLATE_LEVEL = 9  # zlib's best: deterministic like every level, ~1% smaller than 6
_CACHE_DEFLATE_ABOVE = 256 * 1024
_ZIP_MIN_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can record
_MAX_MEMBERS = 0xFFFF
_MAX_SIZE = 0xFFFFFFFF


@dataclass(frozen=True)
class Member:
    """One file of an archive."""

    name: str
    data: bytes
    mode: int = 0o644


def dos_datetime(epoch: int) -> tuple[int, int]:
    """(time, date) fields of a zip entry for ``epoch`` (UTC, clamped to 1980..2107)."""
    epoch = max(epoch, _ZIP_MIN_EPOCH)
    t = time.gmtime(epoch)
    year = min(t.tm_year, 2107)
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15, 9)
    return compressor.compress(data) + compressor.flush()


def _deflate_cached(data: bytes) -> bytes:
    if len(data) < _CACHE_DEFLATE_ABOVE:
        return _deflate(data)
    key = hashlib.sha256(data).hexdigest()
    cache_file = cache_home() / "deflate" / f"{key}-{DEFLATE_LEVEL}-{zlib.ZLIB_RUNTIME_VERSION}"
    try:
        return cache_file.read_bytes()
    except OSError:
        pass
    packed = _deflate(data)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{key}.{os.getpid()}.tmp")
        tmp.write_bytes(packed)
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return packed


def write_archive(path: Path, members: list[Member], epoch: int) -> None:
    """Write ``members`` (in this order) as a zip file at ``path``, atomically."""
    if len(members) > _MAX_MEMBERS:
        raise ImageError(f"too many files for an image ({len(members)})")
    dos_time, dos_date = dos_datetime(epoch)
    chunks: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for member in members:
        name = member.name.encode("utf-8")
        crc = zlib.crc32(member.data)
        packed = _deflate_cached(member.data)
        method = 8
        if len(packed) >= len(member.data):
            packed, method = member.data, 0
        if len(member.data) > _MAX_SIZE or offset > _MAX_SIZE:
            raise ImageError(f"{member.name}: too large for an image")
        flags = 0x800 if not name.isascii() else 0
        local = struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, flags, method, dos_time, dos_date, crc,
            len(packed), len(member.data), len(name), 0,
        )
        chunks += [local, name, packed]
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, flags, method, dos_time,
                dos_date, crc, len(packed), len(member.data), len(name), 0, 0, 0, 0,
                ((0o100000 | member.mode) << 16), offset,
            )
            + name
        )
        offset += len(local) + len(name) + len(packed)
    directory = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory),
                      offset, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.write(directory)
            handle.write(end)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def safe_member_name(name: str) -> bool:
    """Whether a member name stays inside the directory it is extracted to."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return False
    parts = name.split("/")
    return all(part not in ("", ".", "..") for part in parts)


class ImageArchive:
    """An image file opened for reading; every failure is an ``ImageError``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise ImageError(f"{self.path}: no such image") from None
        except IsADirectoryError:
            raise ImageError(f"{self.path} is a directory, not an image") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise ImageError(
                f"{self.path} is not a Fata image (truncated or corrupt: {exc})"
            ) from None
        infos = self._zip.infolist()
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not safe_member_name(info.filename):
                self.close()
                raise ImageError(f"{self.path}: unsafe member name {info.filename!r}")
            if info.filename in self.infos:
                self.close()
                raise ImageError(f"{self.path}: member {info.filename} appears twice")
            self.infos[info.filename] = info

    def names(self) -> list[str]:
        """Member names in archive order."""
        return list(self.infos)

    def read(self, name: str) -> bytes:
        """A member's bytes (CRC-checked); a missing or damaged member is an ``ImageError``."""
        info = self.infos.get(name)
        if info is None:
            raise ImageError(f"{self.path}: member {name} is missing")
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, struct.error,
                NotImplementedError, RuntimeError) as exc:
            raise ImageError(f"{self.path}: member {name} is corrupt ({exc})") from None

    def close(self) -> None:
        """Release the file."""
        self._zip.close()

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
