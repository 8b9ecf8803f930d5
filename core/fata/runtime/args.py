"""Command-line parsing for a running image: runtime/platform options, then appliance args.

``fata run IMAGE [runtime and platform options] -- [appliance arguments]``: the two halves
are parsed separately so that an appliance may name its options freely (``--port``) without
clashing with the platform's (``--netif``).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split at the first ``--`` into (runtime options, appliance arguments)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def runtime_parser(baked: dict[str, Any]) -> argparse.ArgumentParser:
    """Options of the runtime itself plus those of the platforms providing the devices."""
    parser = argparse.ArgumentParser(
        prog=f"fata run {baked['name']}",
        description=f"Run the sealed {baked['name']} appliance "
        f"(net={baked['keys'].get('net', 'none')}). Appliance arguments follow `--`.",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="lowest level of events logged (default info)")
    parser.add_argument("--trace", metavar="FILE", default=None,
                        help="write a Chrome trace-event JSON file (open it in Perfetto)")
    for module in device_modules(baked):
        add = getattr(importlib.import_module(module), "add_arguments", None)
        if add is not None:
            add(parser)
    return parser


def device_modules(baked: dict[str, Any]) -> list[str]:
    """The platform modules that provide the appliance's devices, in declaration order."""
    from fata.platform.registry import provider

    modules: list[str] = []
    for spec in baked["devices"].values():
        module = provider(spec["kind"], baked["keys"])
        if module not in modules:
            modules.append(module)
    return modules


def appliance_parser(baked: dict[str, Any]) -> argparse.ArgumentParser:
    """The appliance's runtime arguments as declared with ``arg(...)`` in its config.py."""
    parser = argparse.ArgumentParser(
        prog=f"fata run {baked['name']} --",
        description=baked.get("description") or f"{baked['name']} {baked['version']}",
    )
    for spec in baked["args"]:
        option = "--" + spec["name"].replace("_", "-")
        kind = _TYPES[spec["type"]]
        kwargs: dict[str, Any] = {"dest": spec["name"], "help": spec["help"] or None}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["default"] = bool(spec["default"])
        else:
            kwargs["type"] = kind
            kwargs["metavar"] = spec["type"].upper()
            if spec["choices"] is not None:
                kwargs["choices"] = spec["choices"]
            if spec["multiple"]:
                kwargs["action"] = "append"
                kwargs["default"] = None
            else:
                kwargs["default"] = spec["default"]
                if spec["default"] not in (None, ""):
                    kwargs["help"] = f"{spec['help']} (default {spec['default']})".strip()
        parser.add_argument(option, **kwargs)
    return parser


def parse_appliance_args(baked: dict[str, Any], argv: list[str]) -> argparse.Namespace:
    """Parse and validate the appliance's arguments; configure-time keys are added read-only."""
    namespace = appliance_parser(baked).parse_args(argv)
    for spec in baked["args"]:
        if spec["multiple"] and getattr(namespace, spec["name"]) is None:
            setattr(namespace, spec["name"], list(spec["default"]))
    for name, value in baked["keys"].items():
        setattr(namespace, name, value)
    return namespace
