"""The errors every ``Stack`` raises, whichever platform provides it.

An appliance catches one set of exceptions on every target: binding a port that is taken is
an :class:`AddressInUse` on host sockets and on Fata's own TCP/IP alike.  Each is an
``OSError`` with the matching ``errno`` (so code written against sockets keeps working),
and connection failures are the built-in ``ConnectionRefusedError``,
``ConnectionResetError``, ``BrokenPipeError`` (writing after ``shutdown``/``close``) and
``TimeoutError``.
"""

from __future__ import annotations

import errno


class StackError(OSError):
    """A request the network stack cannot carry out; ``errno`` says which kind."""

    code = errno.EINVAL

    def __init__(self, message: str) -> None:
        super().__init__(self.code, message)

    def __str__(self) -> str:
        return self.strerror or ""


class AddressInUse(StackError):
    """The port is already bound on that address (``EADDRINUSE``)."""

    code = errno.EADDRINUSE


class AddressNotAvailable(StackError):
    """The address is not one of the stack's own (``EADDRNOTAVAIL``)."""

    code = errno.EADDRNOTAVAIL


class NetworkUnreachable(StackError):
    """No route to the destination, or no address to send from (``ENETUNREACH``)."""

    code = errno.ENETUNREACH


_BY_ERRNO: dict[int, type[StackError]] = {
    errno.EADDRINUSE: AddressInUse,
    errno.EADDRNOTAVAIL: AddressNotAvailable,
    errno.ENETUNREACH: NetworkUnreachable,
    errno.EHOSTUNREACH: NetworkUnreachable,
    errno.EAFNOSUPPORT: AddressNotAvailable,  # the host has no address of that family
}


def from_os_error(exc: OSError, what: str) -> OSError:
    """The contract's exception for a host ``OSError`` met while doing ``what``.

    Errors the contract names become their type (message ``"<what>: <reason>"``); the
    connection errors are built-ins already and come back unchanged.
    """
    kind = _BY_ERRNO.get(exc.errno or 0)
    if kind is None:
        return exc
    return kind(f"{what}: {exc.strerror or exc}")
