"""``fata.runtime.reload.Reloader``: one reload at a time, off the event loop, and a failed
load keeps the old data (logged on the real console)."""

from __future__ import annotations

import asyncio
import io
import threading

from fata.platform.unix import UnixConsole
from fata.runtime.reload import Reloader


class Bad(Exception):
    pass


def test_one_reload_at_a_time_and_failures_keep_the_old_data() -> None:
    out = io.StringIO()
    reloader = Reloader(UnixConsole("t", stream=out), "zones", (Bad,))
    release = threading.Event()
    loaded_in: list[str] = []

    def slow() -> str:
        loaded_in.append(threading.current_thread().name)
        release.wait(10)
        return "new"

    def bad() -> str:
        raise Bad("zone.db:3: no SOA")

    async def main() -> None:
        first = asyncio.ensure_future(reloader.load(slow))
        while not loaded_in:  # the load has started in its thread
            await asyncio.sleep(0)
        assert await reloader.load(slow) is None  # a second one meanwhile: ignored
        release.set()
        assert await first == "new"
        assert await reloader.load(bad) is None
        assert reloader.running is False

    asyncio.run(main())
    log = out.getvalue()
    assert loaded_in and loaded_in[0] != threading.main_thread().name
    assert "reload already in progress; ignored" in log
    assert "reload failed, still serving the previous zones: zone.db:3: no SOA" in log
