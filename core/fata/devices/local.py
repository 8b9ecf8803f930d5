"""Local stream sockets: connections between programs on the same machine, by name.

What a daemon that local tools talk to needs (the xenstore daemon's Unix sockets, which
Xen's ``libxenstore`` reaches through ``XENSTORED_PATH``): listen on a name and get a
:class:`~fata.devices.Flow` per connection, the same contract as TCP's, half-close
included.  On ``unix`` a name is a file-system path of a Unix-domain socket; another
target maps names to its own local transport.
"""

from __future__ import annotations

import abc

from fata.devices.stack import Flow, FlowHandler


class LocalListener(abc.ABC):
    """A listening local socket."""

    name: str

    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting (and remove the name); established flows are unaffected."""


class LocalSockets(abc.ABC):
    """Listening on, and connecting to, local stream sockets."""

    @abc.abstractmethod
    async def listen(self, name: str, handler: FlowHandler, *, mode: int = 0o600
                     ) -> LocalListener:
        """Accept on ``name`` (a stale socket left there by a crash is replaced; anything
        else there is an error); each connection runs ``handler`` in a task of its own, and
        is closed when it returns.  ``mode`` is who may connect, as file permissions."""

    @abc.abstractmethod
    async def connect(self, name: str) -> Flow:
        """A connection to the local socket ``name``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every listener and connection of this device."""
