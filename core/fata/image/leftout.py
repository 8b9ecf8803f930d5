"""What ``fata build`` left out of an image, and the finder that says so at run time.

The closure walk (``closure``) leaves out modules reached only by lazy or guarded imports
of library code.  Each image carries a small generated module, ``__fata_leftout__``, that
holds the names left out, why, and by which importers, and puts a finder first on
``sys.meta_path``.  Importing a left-out module (or anything under it) then raises
``ModuleNotFoundError`` naming the module, why the build left it out and the ``include=``
that brings it in, instead of the seal's generic "not in this image's manifest".  Being a
``ModuleNotFoundError``, it still sends a guarded ``try: import x / except ImportError``
to its fallback, as the build assumed.  A module left out as *deferred* (imported at
module level, used only inside functions) gets a stand-in instead, so that its importer
still imports; the first use of any of its attributes raises the same error.

The finder only raises, for names the build itself left out, so it cannot admit anything
the manifest does not hold.  The image's main installs it by importing the module right
after sealing the import system (``HOOK``).
"""

from __future__ import annotations

import pprint
from typing import Any

MODULE_NAME = "__fata_leftout__"
# The line the image's main runs right after sealing ``sys.path`` to the image.
HOOK = f"import {MODULE_NAME}  # noqa: E402,F401"

_TEMPLATE = '''\
"""What `fata build` left out of this image (generated; do not edit)."""

import sys

LEFT_OUT = {left_out}


def _entry(name):
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        entry = LEFT_OUT.get(".".join(parts[:depth]))
        if entry is not None:
            return dict(entry, top=".".join(parts[:depth]))
    return None


def message(name):
    """Why importing ``name`` fails in this image, or None when it was not left out."""
    entry = _entry(name)
    if entry is None:
        return None
    top = entry["top"]
    return (
        f"module {{name!r}} is not in this image: `fata build` left out {{top!r}}, "
        f"{{entry['why']}} ({{entry['importers']}}); if the appliance needs it, add "
        f"include=[{{top!r}}] to Appliance(...) in its config.py and rebuild"
    )


class _StandIn:
    """Loader of a stand-in for a module left out as "deferred": its importer imports it
    at module level but uses it only inside functions, so the import must succeed and any
    use must fail, naming it."""

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        name = module.__name__
        text = message(name)

        def __getattr__(attr):
            if attr.startswith("__") and attr.endswith("__"):
                raise AttributeError(attr)  # the import system probing: not a use
            raise ModuleNotFoundError(f"{{text}} (used: {{name}}.{{attr}})", name=name)

        module.__getattr__ = __getattr__


class LeftOutFinder:
    """First on sys.meta_path: answers for the modules the build left out (they are not
    in the image, so no other finder could find them): a stand-in where the build found
    the import itself must succeed, else ModuleNotFoundError with the reason."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        text = message(name)
        if text is None:
            return None
        if _entry(name)["stand_in"]:
            from importlib.machinery import ModuleSpec

            return ModuleSpec(name, _StandIn, is_package=True)
        raise ModuleNotFoundError(text, name=name)


def install():
    """Put the finder first on sys.meta_path (once)."""
    if not any(getattr(f, "__name__", "") == "LeftOutFinder" for f in sys.meta_path):
        sys.meta_path.insert(0, LeftOutFinder)


install()
'''


def runtime_source(left_out: dict[str, dict[str, Any]]) -> bytes:
    """The source of ``__fata_leftout__`` for a build's left-out report (``Closure.
    left_out_report()``): deterministic, so the image stays byte-identical."""
    text = _TEMPLATE.format(left_out=pprint.pformat(left_out, indent=1, width=100,
                                                    sort_dicts=True))
    return text.encode("utf-8")


def require_hook(main: bytes) -> bytes:
    """``main`` (the image's main module) if it imports the finder right after it seals
    the import system (``mainmodule``'s template does); ImageError otherwise, so that a
    change of the template cannot silently leave images without the finder."""
    if HOOK.encode() not in main:
        from fata.image.errors import ImageError

        raise ImageError(f"the image's main does not import the left-out finder ({HOOK!r})")
    return main


def summary(left_out: dict[str, dict[str, Any]], limit: int = 8) -> str:
    """One line for ``fata build``: how many modules were left out, the first few."""
    names = sorted(left_out)
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return (f"left out {len(names)} module(s) reached only by imports the appliance is "
            f"not known to run: {shown} (see \"left_out\" in the manifest; include=[...] "
            f"brings one in)")
