"""Images: build, seal, sign, verify, run, inspect, fork, publish and pull appliances.

An image is one file: a deterministic zip holding ``MANIFEST.json`` (what the image is and
every member's size and SHA-256), ``SIGNATURE`` (ed25519 over the manifest) and the
closure of modules the appliance reaches as sourceless bytecode and extension modules under
``lib/python3.X/``, plus its baked data under ``data/``.  Each step lives in its own
module, whose docstring says why it is the way it is: ``closure`` (which modules),
``bytecode`` (deterministic pyc), ``archive`` (the zip), ``manifest``, ``keys`` (ed25519),
``builder``, ``verification``, ``run`` (extract and exec, sealed), ``inspection``, ``fork``,
``publishing``, ``pulling`` and ``recipes`` (``make images``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Each name is imported on first use, so that `fata run IMAGE` loads only verification and
# run code (start-up time is part of the DNS appliance's first-answer budget).
_WHERE = {
    "ImageError": "fata.image.errors",
    "build": "fata.image.builder",
    "format_inspect": "fata.image.inspection",
    "inspect": "fata.image.inspection",
    "keygen": "fata.image.keys",
    "new": "fata.image.fork",
    "prepare": "fata.image.run",
    "publish": "fata.image.publishing",
    "pull": "fata.image.pulling",
    "run_image": "fata.image.run",
    "verify": "fata.image.verification",
    "warm": "fata.image.run",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fata.image' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
