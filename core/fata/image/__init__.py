"""Images: build, seal, sign, verify, run, inspect, fork, publish and pull appliances.

An image is one file: a deterministic zip holding ``MANIFEST.json`` (what the image is and
every member's size and SHA-256), ``SIGNATURE`` (ed25519 over the manifest) and the
closure of modules the appliance reaches as sourceless bytecode and extension modules under
``lib/python3.X/``, plus its baked data under ``data/``.  Each step lives in its own
module, whose docstring says why it is the way it is: ``closure`` (which modules),
``bytecode`` (deterministic pyc), ``archive`` (the zip), ``manifest``, ``keys`` (ed25519),
``build``, ``verify``, ``run`` (extract and exec, sealed), ``inspection``, ``new`` (fork),
``publish``, ``pull`` and ``recipes`` (``make images``).
"""

from __future__ import annotations

from fata.image.build import build
from fata.image.errors import ImageError
from fata.image.inspection import format_inspect, inspect
from fata.image.keys import keygen
from fata.image.new import new
from fata.image.publish import publish
from fata.image.pull import pull
from fata.image.run import prepare, run_image
from fata.image.verify import verify

__all__ = [
    "ImageError",
    "build",
    "format_inspect",
    "inspect",
    "keygen",
    "new",
    "prepare",
    "publish",
    "pull",
    "run_image",
    "verify",
]
