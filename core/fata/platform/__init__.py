"""Platforms: where devices come from on each target.

Each network platform module (``socket_stack`` for ``--net socket``, ``direct`` for
``--net direct``) exposes the same two functions, which the runtime calls:

- ``add_arguments(parser)``: the platform options of ``fata run`` (e.g. ``--netif``);
- ``async open_stack(options, console) -> fata.devices.Stack``.
"""

from __future__ import annotations


class PlatformError(Exception):
    """A platform cannot provide a device; the message says what is needed, in one sentence."""
