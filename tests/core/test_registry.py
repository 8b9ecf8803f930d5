"""The device registry: one table for the runtime and the builder, opened in order."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from fata.devices import Block, Clock, Stack
from fata.platform import PlatformError
from fata.platform.registry import PROVIDERS, DeviceContext, open_order, provider
from fata.platform.unix import UnixConsole
from fata.runtime.args import device_modules, runtime_parser
from fata.runtime.boot import close_devices, open_devices


def test_every_kind_of_the_dsl_has_a_provider_module_that_opens_it() -> None:
    import importlib

    for kind, table in PROVIDERS.items():
        for module in table.values():
            assert callable(getattr(importlib.import_module(module), f"open_{kind}"))
    assert provider("stack", {"net": "direct"}) == "fata.platform.direct"
    assert provider("netif", {}) == "fata.platform.netif"
    with pytest.raises(PlatformError, match="kind 'teleporter'"):
        provider("teleporter", {})


def test_netifs_and_blocks_open_first() -> None:
    devices = {"stack": {"kind": "stack"}, "clock": {"kind": "clock"},
               "log": {"kind": "block"}, "port": {"kind": "netif"}}
    assert open_order(devices) == ["port", "log", "stack", "clock"]


BAKED = {"name": "t", "version": "1", "keys": {"net": "socket", "loop": "asyncio"},
         "devices": {"stack": {"kind": "stack"}, "disk": {"kind": "block", "name": "disk"},
                     "clock": {"kind": "clock"}}, "args": []}


def test_runtime_options_come_from_every_provider_once() -> None:
    assert device_modules(BAKED) == ["fata.platform.socket_stack", "fata.platform.block_file",
                                     "fata.platform.unix"]
    options = runtime_parser(BAKED).parse_args(["--block", "disk=/x.img", "--udp-io", "plain"])
    assert options.block == ["disk=/x.img"] and options.udp_io == "plain"


def test_boot_opens_each_device_from_its_provider_and_closes_them(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))

    async def main() -> None:
        options = runtime_parser(BAKED).parse_args(["--block", f"disk={disk}"])
        ctx = DeviceContext.standalone(options, UnixConsole("t", "error"), tmp_path)
        devices = await open_devices(BAKED, ctx)
        assert isinstance(devices["stack"], Stack) and isinstance(devices["clock"], Clock)
        assert isinstance(devices["disk"], Block) and devices["disk"].info.sectors == 8
        await close_devices(ctx.devices)
        assert devices["disk"].fd == -1

        missing = DeviceContext.standalone(argparse.Namespace(block=[]),
                                           UnixConsole("t", "error"), tmp_path)
        with pytest.raises(PlatformError, match="--block disk=PATH"):
            await open_devices(BAKED, missing)
        await close_devices(missing.devices)

    asyncio.run(main())
