"""Which platform module provides each device kind, for the keys an image was built with.

One table, read by both sides: the image builder (through ``fata.config``) puts exactly these
modules, and what they reach, into an image; the runtime builds each declared device from
the same module.  A provider module has, for each kind it provides,

- ``async open_<kind>(name, spec, ctx) -> device`` (``spec``: the device's baked
  declaration; ``ctx``: a :class:`DeviceContext`),

and optionally ``add_arguments(parser)``, its ``fata run`` options (called once per module,
so modules that share an option add it through one idempotent helper).  A new target adds a
column here (e.g. the Xen platform's netfront for ``netif``), not code in the runtime.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fata.devices import Console, Lifecycle, Random
from fata.platform import PlatformError

ANY = "*"

PROVIDERS: dict[str, dict[str, str]] = {
    "stack": {"socket": "fata.platform.socket_stack", "direct": "fata.platform.direct"},
    "netif": {ANY: "fata.platform.netif"},
    "block": {ANY: "fata.platform.block_file"},
    "kv_ro": {ANY: "fata.platform.kv_dir"},
    "kv_runtime": {ANY: "fata.platform.kv_host"},
    "clock": {ANY: "fata.platform.unix"},
    "random": {ANY: "fata.platform.unix"},
    "console": {ANY: "fata.platform.unix"},
    "lifecycle": {ANY: "fata.platform.unix"},
    "local_sockets": {ANY: "fata.platform.local_unix"},
    "xen": {ANY: "fata.platform.xen_host"},
}
"""kind -> (``net`` key value, or ``*`` for any) -> provider module."""

OPEN_ORDER = ("netif", "block")
"""Kinds opened before the others: a stack stands on netifs the appliance also declares."""


def provider(kind: str, keys: Mapping[str, str]) -> str:
    """The module that provides ``kind`` under ``keys``; ``PlatformError`` if none does."""
    table = PROVIDERS.get(kind)
    if table is None:
        raise PlatformError(f"no platform provides devices of kind {kind!r}")
    module = table.get(ANY) or table.get(keys.get("net", ""))
    if module is None:
        raise PlatformError(f"no platform provides {kind!r} for net={keys.get('net')!r}")
    return module


def open_order(devices: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Device names in the order to open them (``OPEN_ORDER`` kinds first, else declared)."""
    rank = {kind: i for i, kind in enumerate(OPEN_ORDER)}
    names = list(devices)
    return sorted(names, key=lambda n: (rank.get(devices[n]["kind"], len(rank)), names.index(n)))


@dataclass
class DeviceContext:
    """What a provider may use to open a device: the ``fata run`` options, the console,
    lifecycle and random source (a stack's ISN secret and ports), the image's root (baked
    data lives under ``data/``), every device's baked spec, and the devices opened so far
    (a stack finds its netifs there)."""

    options: argparse.Namespace
    console: Console
    lifecycle: Lifecycle
    random: Random
    root: Path
    specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    devices: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def standalone(cls, options: argparse.Namespace, console: Console,
                   root: Path | None = None) -> DeviceContext:
        """A context outside the runtime (tools, tests): the host's lifecycle and random."""
        from fata.platform.unix import UnixLifecycle, UnixRandom

        return cls(options, console, UnixLifecycle(), UnixRandom(), root or Path("."))
