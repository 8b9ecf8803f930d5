"""The runtime: runs an appliance from its baked configuration inside the event loop.

See :mod:`fata.runtime.boot` (argument parsing, devices, lifecycle),
:mod:`fata.runtime.loop` (asyncio or uvloop) and :mod:`fata.runtime.trace` (``--trace``).
"""
