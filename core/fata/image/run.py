"""``fata run IMAGE``: verify, extract once, and become the image's interpreter.

An image runs on the interpreter that runs ``fata`` (the image records which Python it was
built for, and a different one is refused before anything starts).  Every byte is verified
first; the members are then extracted once into a content-addressed directory
(``$XDG_CACHE_HOME/fata/images/<manifest sha256>/``, written to a temporary name and
renamed, compared with the verified bytes on every later run), and the process ``execve``s
the interpreter with ``PYTHONHOME`` at that directory, ``-S -s -B -P`` and no
``PYTHONPATH``.  The interpreter then knows only the image's library directory, and the
image's main seals ``sys.meta_path`` so that nothing outside the manifest can be imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fata.image.archive import ImageArchive
from fata.image.errors import ImageError
from fata.image.keys import trusted_keys
from fata.image.manifest import python_mismatch
from fata.image.paths import cache_home
from fata.image.verification import VerifiedImage, check_signature, read_manifest, verify_image

_STAMP = ".fata-extracted"
KEEP_EXTRACTED = 8  # extracted images kept in the cache, most recently run first


@dataclass(frozen=True)
class Launch:
    """How to start an image: the program, its arguments and environment."""

    executable: str
    argv: list[str]
    env: dict[str, str]
    root: Path


def extract(verified: VerifiedImage) -> Path:
    """The directory holding the image's members, extracting them if needed."""
    digest = hashlib.sha256(verified.manifest_bytes).hexdigest()
    base = cache_home() / "images"
    root = base / digest
    if root.is_dir():
        if _matches(root, verified):
            os.utime(root)  # recently used: pruned last
            return root
        shutil.rmtree(root, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{digest}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name, data in verified.members.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entry_mode = 0o755 if name.endswith(".so") or ".so." in name else 0o644
            path.chmod(entry_mode)
        (tmp / verified.manifest["main"]).parent.joinpath("lib-dynload").mkdir(exist_ok=True)
        (tmp / _STAMP).write_bytes(verified.manifest_bytes)
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process extracted the same image first: use its copy if it is intact.
            if not (root.is_dir() and _matches(root, verified)):
                raise
    except OSError as exc:
        raise ImageError(f"cannot extract {verified.path} into {root}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(base, keep=root)
    return root


def prune(base: Path, keep: Path, limit: int = KEEP_EXTRACTED) -> None:
    """Remove all but the ``limit`` most recently used extracted images (each is tens of
    MB, and ``fata run DIR`` makes a new one whenever the appliance changes)."""
    try:
        entries = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in entries[limit:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _matches(root: Path, verified: VerifiedImage) -> bool:
    """Whether an extracted directory still holds exactly the verified bytes."""
    try:
        if (root / _STAMP).read_bytes() != verified.manifest_bytes:
            return False
        for name, data in verified.members.items():
            if (root / name).read_bytes() != data:
                return False
    except OSError:
        return False
    return True


def interpreter() -> str:
    """The real interpreter binary behind ``sys.executable`` (not a virtualenv's link)."""
    return os.path.realpath(sys.executable)


def prepare(image: Path, argv: list[str], trust: list[Path] | tuple[Path, ...] = ()) -> Launch:
    """Verify and extract ``image``; return how to start it with ``argv``.

    An image file whose SHA-256 equals that of one fully verified and extracted before is
    not read member by member again: equal digests mean equal bytes, so only the signature
    is re-checked (against today's trusted keys).  That keeps start-up fast without ever
    running bytes that were not verified.
    """
    image = Path(image)
    keys = trusted_keys(list(trust))
    known = _previously_verified(image, keys)
    if known is not None:
        manifest, root = known
    else:
        verified = verify_image(image, keys)
        manifest = verified.manifest
        _check_runnable(image, manifest, verified.members)
        root = extract(verified)
        _remember_verified(image, root, manifest)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONHOME=str(root), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUTF8="1")
    exe = interpreter()
    main = str(root / manifest["main"])
    return Launch(exe, [exe, "-S", "-s", "-B", "-P", main, *argv], env, root)


def _check_runnable(image: Path, manifest: dict, members: dict[str, bytes] | None) -> None:
    mismatch = python_mismatch(manifest["python"])
    if mismatch:
        raise ImageError(f"{image}: {mismatch}")
    if members is not None and manifest["main"] not in members:
        raise ImageError(f"{image}: its main {manifest['main']} is not one of its members")


def _file_digest(image: Path) -> str | None:
    try:
        with open(image, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _verified_record(digest: str) -> Path:
    return cache_home() / "verified" / digest


def _stat_of(root: Path, manifest: dict) -> dict[str, list[int]]:
    out = {}
    for entry in manifest["files"]:
        st = os.stat(root / entry["path"])
        out[entry["path"]] = [st.st_size, st.st_mtime_ns]
    return out


def _remember_verified(image: Path, root: Path, manifest: dict) -> None:
    """Record that the file with this digest was verified member by member into ``root``,
    with the size and mtime of every extracted file (a changed file is noticed cheaply and
    sends the next run through full verification, which repairs the extraction)."""
    digest = _file_digest(image)
    if digest is None:
        return
    record = _verified_record(digest)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{digest}.{os.getpid()}")
        tmp.write_text(json.dumps({"root": root.name, "stat": _stat_of(root, manifest)}))
        os.replace(tmp, record)
    except OSError:
        pass  # only an optimisation


def _previously_verified(image: Path, keys: list) -> tuple[dict, Path] | None:
    """``(manifest, root)`` if these exact bytes were verified and extracted before and the
    extraction is unchanged since."""
    digest = _file_digest(image)
    if digest is None:
        return None
    try:
        record = json.loads(_verified_record(digest).read_text())
        root = cache_home() / "images" / record["root"]
        stamp = (root / _STAMP).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(stamp).hexdigest() != root.name:
        return None
    with ImageArchive(image) as archive:
        manifest_bytes, manifest = read_manifest(archive)
        if manifest_bytes != stamp:
            return None
        check_signature(archive, manifest_bytes, manifest, keys)
    try:
        if _stat_of(root, manifest) != record["stat"]:
            return None
    except OSError:
        return None
    _check_runnable(image, manifest, None)
    os.utime(root)  # recently used: pruned last
    return manifest, root


def warm(image: Path, trust: list[Path] | tuple[Path, ...] = ()) -> bool:
    """Verify and extract ``image`` now, as its first run would, so that first run starts as
    fast as every later one (``fata build`` and ``fata pull`` call this: a new image's first
    start is otherwise ~0.2 s slower, which counts against an appliance's first answer).

    Best effort: an image signed by a key not trusted here, or built for another Python, is
    simply not warmed (``fata run`` says what is wrong when it is run); returns whether it was.
    """
    try:
        prepare(image, [], trust)
    except ImageError:
        return False
    return True


def run_image(image: Path, argv: list[str], trust: list[Path] | tuple[Path, ...] = ()) -> int:
    """Replace this process with the image's; returns only if it cannot start."""
    launch = prepare(image, argv, trust)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(launch.executable, launch.argv, launch.env)
    except OSError as exc:
        raise ImageError(f"cannot start {launch.executable}: {exc}") from None
    return 1  # not reached
