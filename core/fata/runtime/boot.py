"""Boot: from a baked configuration and a command line to a running appliance.

This is what an image's generated main calls.  It parses the runtime and appliance
arguments, builds each declared device from the platform chosen at build time, calls the
appliance's ``start(**devices, args=...)`` in the event loop and turns SIGTERM/SIGINT into
a graceful stop (devices closed, exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from fata.platform import PlatformError
from fata.platform.registry import DeviceContext, open_order, provider
from fata.platform.unix import UnixConsole, UnixLifecycle, UnixRandom
from fata.runtime import trace
from fata.runtime.args import parse_appliance_args, runtime_parser, split_argv
from fata.runtime.loop import loop_factory

STOP_GRACE_SECONDS = 5.0
XEN_CONSOLE_ENV = "FATA_XEN_CONSOLE"  # fata.platform.xen_console.CONSOLE_ENV
XEN_CONSOLE_MODULE = "fata.platform.xen_console"


def run_baked(baked: dict[str, Any], argv: list[str], root: Path) -> int:
    """Run the appliance described by ``baked``; ``root`` holds its baked data. Returns the exit status."""
    runtime_argv, app_argv = split_argv(list(argv))
    options = runtime_parser(baked).parse_args(runtime_argv)
    args = parse_appliance_args(baked, app_argv)
    console = UnixConsole(baked["name"], options.log_level)
    factory, loop_name = loop_factory(baked["keys"].get("loop", "asyncio"))
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_main(baked, options, args, Path(root), console, loop_name))


async def open_devices(baked: dict[str, Any], ctx: DeviceContext) -> dict[str, Any]:
    """Every declared device, each from the platform module the registry names for it.

    Opened into ``ctx.devices`` (netifs and blocks first, since a stack may stand on them),
    so that on failure the caller still closes the ones already open."""
    for name in open_order(baked["devices"]):
        spec = baked["devices"][name]
        module = importlib.import_module(provider(spec["kind"], baked["keys"]))
        opener = getattr(module, f"open_{spec['kind']}")
        ctx.devices[name] = await opener(name, spec, ctx)
    return {name: ctx.devices[name] for name in baked["devices"]}


async def close_devices(devices: dict[str, Any]) -> None:
    """Close every device that can be closed, the last opened first; one failing does not
    keep the others open."""
    for device in reversed(list(devices.values())):
        close = getattr(device, "close", None)
        if close is None:
            continue
        with suppress(Exception):
            result = close()
            if asyncio.iscoroutine(result):
                await result


async def _main(baked: dict[str, Any], options: argparse.Namespace, args: argparse.Namespace,
                root: Path, console: UnixConsole, loop_name: str) -> int:
    loop = asyncio.get_running_loop()
    lifecycle = UnixLifecycle()
    lifecycle.install(loop)
    tracer = None
    if options.trace:
        tracer = trace.Tracer(Path(options.trace))
        trace.current = tracer
        tracer.install(loop)
    if os.environ.get(XEN_CONSOLE_ENV) == "1":  # a Xen guest logs to its console page
        # named by a variable, which the image's import walk does not follow: only a
        # --target xen image carries the module (XEN_GUEST_MODULES) and what it imports
        await importlib.import_module(XEN_CONSOLE_MODULE).attach(console)
    ctx = DeviceContext(options, console, lifecycle, UnixRandom(), root, baked["devices"])
    status = 0
    try:
        devices = await open_devices(baked, ctx)
        module_name, func_name = baked["entry"].split(":", 1)
        start = getattr(importlib.import_module(module_name), func_name)
        console.info(f"{baked['name']} {baked['version']} starting "
                     f"(net={baked['keys'].get('net', 'none')}, loop={loop_name})")
        start_task = asyncio.create_task(start(**devices, args=args), name="start")
        stop_task = asyncio.create_task(lifecycle.wait_stopped(), name="lifecycle")
        await asyncio.wait({start_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if lifecycle.stop_requested:
            sig = lifecycle.stop_signal
            name = signal.Signals(sig).name if sig else "request"
            console.info(f"stop requested ({name}), shutting down")
        if not start_task.done():
            start_task.cancel()
            with suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(start_task, STOP_GRACE_SECONDS)
        stop_task.cancel()
        if start_task.done() and not start_task.cancelled() and start_task.exception():
            status = 0 if lifecycle.stop_requested else 1
            _report(console, start_task.exception())
    except PlatformError as exc:
        console.error(str(exc))
        status = 1
    except Exception as exc:
        _report(console, exc)
        status = 1
    finally:
        await close_devices(ctx.devices)
        if tracer is not None:
            tracer.write()
            trace.current = None
    console.info(f"{baked['name']} stopped")
    return status


def _report(console: UnixConsole, exc: BaseException) -> None:
    """Log a failure as one line (the full traceback only at debug level)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, (PlatformError, OSError)) or getattr(exc, "is_user_error", False):
        console.error(message)
    else:
        console.error(f"{type(exc).__name__}: {message}")
    if console.enabled("debug"):
        for line in traceback.format_exception(exc):
            sys.stderr.write(line)
