"""Where the image tools keep things: the per-user cache and config, the repository's dirs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import fata


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/fata`` (default ``~/.cache/fata``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fata"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/fata`` (default ``~/.config/fata``)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "fata"


def fata_source_root() -> Path:
    """The directory holding the ``fata`` package (``core/`` in the repository)."""
    return Path(fata.__file__).resolve().parent.parent


def project_root() -> Path | None:
    """The Fata repository this ``fata`` comes from, when it runs from a checkout."""
    candidate = fata_source_root().parent
    return candidate if _declares_fata(candidate / "pyproject.toml") else None


def repo_root_for(path: Path) -> Path:
    """The nearest ancestor of ``path`` whose ``pyproject.toml`` declares the ``fata``
    distribution, else the current directory: where ``images/dist/`` goes by default."""
    for candidate in [path.resolve(), *path.resolve().parents]:
        if _declares_fata(candidate / "pyproject.toml"):
            return candidate
    return Path.cwd()


def _declares_fata(pyproject: Path) -> bool:
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return False
    quick = _project_name(text)
    if quick is not None:
        return quick == "fata"
    import tomllib

    try:
        data = tomllib.loads(text)
    except ValueError:
        return False
    return data.get("project", {}).get("name") == "fata"


_NAME_LINE = re.compile(r"""name\s*=\s*(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?""")


def _project_name(text: str) -> str | None:
    """``[project] name`` when it is written the plain way (``name = "..."`` on its own
    line), else None.  Importing ``tomllib`` costs ~5 ms of every ``fata run``, which
    looks here for the project's keys; anything unusual is left to it."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
            continue
        if section == "[project]" and line.startswith("name"):
            match = _NAME_LINE.fullmatch(line)
            if match is None:
                return None
            return match.group(1) if match.group(1) is not None else match.group(2)
    return None


def project_keys_dir() -> Path | None:
    """``images/keys/`` of the repository: the public keys the project publishes images with."""
    root = project_root()
    return root / "images" / "keys" if root is not None else None
