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
import signal
import sys
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from fata.platform import PlatformError
from fata.platform.unix import UnixClock, UnixConsole, UnixLifecycle, UnixRandom
from fata.runtime import trace
from fata.runtime.args import (
    parse_appliance_args,
    runtime_parser,
    split_argv,
    stack_platform_modules,
)
from fata.runtime.loop import loop_factory

STOP_GRACE_SECONDS = 5.0


def run_baked(baked: dict[str, Any], argv: list[str], root: Path) -> int:
    """Run the appliance described by ``baked``; ``root`` holds its baked data. Returns the exit status."""
    runtime_argv, app_argv = split_argv(list(argv))
    options = runtime_parser(baked).parse_args(runtime_argv)
    args = parse_appliance_args(baked, app_argv)
    console = UnixConsole(baked["name"], options.log_level)
    factory, loop_name = loop_factory(baked["keys"].get("loop", "asyncio"))
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_main(baked, options, args, Path(root), console, loop_name))


def _make_device(kind: str, spec: dict[str, Any], root: Path, console: UnixConsole,
                 lifecycle: UnixLifecycle) -> Any:
    if kind == "clock":
        return UnixClock()
    if kind == "random":
        return UnixRandom()
    if kind == "console":
        return console
    if kind == "lifecycle":
        return lifecycle
    if kind == "kv_ro":
        from fata.platform.kv_dir import DirectoryKV

        return DirectoryKV(root / "data" / spec["directory"])
    raise PlatformError(f"no provider for device kind {kind!r}")


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
    devices: dict[str, Any] = {}
    stack = None
    status = 0
    try:
        for name, spec in baked["devices"].items():
            if spec["kind"] == "stack":
                module = importlib.import_module(stack_platform_modules(baked)[0])
                stack = devices[name] = await module.open_stack(options, console)
            else:
                devices[name] = _make_device(spec["kind"], spec, root, console, lifecycle)
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
        if stack is not None:
            with suppress(Exception):
                await stack.close()
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
