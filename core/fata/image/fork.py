"""``fata new NAME --from APPLIANCE``: fork an appliance as a renamed copy.

The copy is the source appliance with its identity changed everywhere it is spelled:
the package ``fata_<old>`` becomes ``fata_<new>`` (directory names and text, also as the
start of longer names such as ``fata_<old>_bench``), the distribution ``fata-<old>`` becomes
``fata-<new>``, and the ``name=`` of its ``config.py``
becomes ``<new>``.  Nothing else is touched (the old name alone may mean something else:
``dns`` is also dnspython's package), so the fork builds, runs and passes its own tests.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from fata import config as fata_config
from fata.image.errors import ImageError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache", ".git", "build", "dist", "bench-results"}


def _skipped(path: Path) -> bool:
    return path.name in _SKIP or path.name.endswith((".egg-info", ".pyc"))


def new(name: str, source_dir: Path, dest_dir: Path | None = None) -> Path:
    """Copy the appliance in ``source_dir`` as ``name`` (into ``dest_dir``, default a sibling
    directory called ``name``); return the new directory."""
    if not _NAME.match(name):
        raise ImageError(f"appliance name {name!r} must be lowercase letters, digits and _ "
                         f"(it becomes the package fata_{name})")
    source_dir = Path(source_dir)
    source = fata_config.load(source_dir)  # a ConfigError says what is wrong with the source
    old = source.name
    old_pkg, new_pkg = f"fata_{old.replace('-', '_')}", f"fata_{name}"
    old_dist, new_dist = f"fata-{old}", f"fata-{name.replace('_', '-')}"
    if name == old:
        raise ImageError(f"the new appliance needs a name other than {old!r}")
    dest = Path(dest_dir) if dest_dir is not None else source_dir.resolve().parent / name
    if dest.exists() and any(dest.iterdir()):
        raise ImageError(f"{dest} exists and is not empty")
    if not (source_dir / old_pkg).is_dir():
        raise ImageError(f"{source_dir} has no package {old_pkg} to rename")

    def rename(text: str) -> str:
        # A left boundary only: fata_dns_bench becomes fata_NAME_bench too.
        text = re.sub(rf"(?<![\w-]){re.escape(old_pkg)}", new_pkg, text)
        return re.sub(rf"(?<![\w-]){re.escape(old_dist)}", new_dist, text)

    files = sorted(p for p in source_dir.rglob("*") if p.is_file())
    dest.mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = path.relative_to(source_dir)
        if any(_skipped(Path(part)) for part in rel.parts):
            continue
        target = dest / Path(*[rename(part) for part in rel.parts])
        target.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            target.write_bytes(data)  # binary data (certificates, fixtures) is copied as is
        else:
            if rel == Path(fata_config.CONFIG_FILE):
                text = re.sub(r"""(\bname\s*=\s*)(["'])""" + re.escape(old) + r"\2",
                              lambda m: f"{m.group(1)}{m.group(2)}{name}{m.group(2)}", text,
                              count=1)
            target.write_text(rename(text), encoding="utf-8")
        shutil.copymode(path, target)
    try:
        forked = fata_config.load(dest)
    except fata_config.ConfigError as exc:
        raise ImageError(f"the copy in {dest} does not load: {exc}") from None
    if forked.name != name:
        raise ImageError(f"{dest}/config.py still names the appliance {forked.name!r}; "
                         f"set name={name!r} by hand")
    return dest
