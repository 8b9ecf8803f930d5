"""Lifecycle device: stop and reload requests from whatever runs the appliance.

On Unix these come from SIGTERM/SIGINT and SIGHUP; on Xen they would come from the
``control/shutdown`` xenstore key.  Appliances never install signal handlers themselves.
"""

from __future__ import annotations

import abc
from collections.abc import Callable


class Lifecycle(abc.ABC):
    """Lets an appliance react to stop and reload requests."""

    @abc.abstractmethod
    def on_reload(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on each reload request (SIGHUP on Unix)."""

    @abc.abstractmethod
    async def wait_stopped(self) -> None:
        """Return once a stop was requested; ``start()`` returning also stops the appliance."""
