"""The benchmark site: files of fixed sizes with deterministic contents, and their digests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SIZES = (1024, 10 * 1024, 100 * 1024)


@dataclass(frozen=True)
class SiteFile:
    """One file of the site: its URL path, size in bytes and SHA-256 of its body."""

    path: str
    size: int
    sha256: str


def label(size: int) -> str:
    """``1024`` -> ``"1 KB"``."""
    return f"{size // 1024} KB"


def content(size: int) -> bytes:
    """``size`` deterministic bytes (a SHA-256 counter stream, the same on every run)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"fata-www-bench-{size}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def write_large_site(root: Path, megabytes: int) -> SiteFile:
    """A site of ``megabytes`` MiB for the start-up and memory run: 1 MiB files of
    deterministic, incompressible bytes (as images and media are), and ``index.html``;
    returns what a server must answer for the first file."""
    root.mkdir(parents=True, exist_ok=True)
    first = None
    for n in range(megabytes):
        data = content(1 << 20) if n == 0 else hashlib.sha256(b"%d" % n).digest() * 32768
        (root / f"large-{n:04d}.bin").write_bytes(data)
        if first is None:
            first = SiteFile(f"/large-{n:04d}.bin", len(data), hashlib.sha256(data).hexdigest())
    (root / "index.html").write_text("<!doctype html><title>large</title>\n")
    assert first is not None
    return first


def write_site(root: Path, sizes: tuple[int, ...] = SIZES) -> list[SiteFile]:
    """Write one file per size under ``root``; return what a server must answer for each."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for size in sizes:
        data = content(size)
        name = f"file-{size // 1024}k.bin"
        (root / name).write_bytes(data)
        files.append(SiteFile(path=f"/{name}", size=size, sha256=hashlib.sha256(data).hexdigest()))
    (root / "index.html").write_text("<!doctype html><title>bench</title>\n")
    return files
