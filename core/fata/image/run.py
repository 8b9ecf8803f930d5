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
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fata.image.errors import ImageError
from fata.image.keys import trusted_keys
from fata.image.manifest import python_mismatch
from fata.image.paths import cache_home
from fata.image.verify import VerifiedImage, verify_image

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
    """Verify and extract ``image``; return how to start it with ``argv``."""
    verified = verify_image(Path(image), trusted_keys(list(trust)))
    mismatch = python_mismatch(verified.manifest["python"])
    if mismatch:
        raise ImageError(f"{image}: {mismatch}")
    if verified.manifest["main"] not in verified.members:
        raise ImageError(f"{image}: its main {verified.manifest['main']} is not one of its members")
    root = extract(verified)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONHOME=str(root), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUTF8="1")
    exe = interpreter()
    main = str(root / verified.manifest["main"])
    return Launch(exe, [exe, "-S", "-s", "-B", "-P", main, *argv], env, root)


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
