"""Events returned by ``receive_data``: what the peer did, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from fata.tls.alerts import AlertDescription


class Event:
    """Base class of everything ``receive_data`` returns."""


@dataclass(frozen=True)
class HandshakeComplete(Event):
    alpn: str | None
    version: str
    cipher: str
    resumed: bool
    group: str | None = None
    signature_scheme: str | None = None
    server_name: str | None = None
    peer_certificates: list[bytes] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class ApplicationData(Event):
    data: bytes


@dataclass(frozen=True)
class AlertReceived(Event):
    level: int
    description: AlertDescription | int


@dataclass(frozen=True)
class ConnectionClosed(Event):
    """The connection is over.  ``alert`` is the fatal alert (sent or received), if any;
    ``by_peer`` says who ended it.  A peer EOF without close_notify has ``truncated``."""

    alert: AlertDescription | int | None = None
    by_peer: bool = True
    truncated: bool = False
    reason: str = ""


@dataclass(frozen=True)
class KeyUpdateReceived(Event):
    update_requested: bool


@dataclass(frozen=True)
class SessionTicketReceived(Event):
    """A TLS 1.3 ticket the client can pass as ``session=`` to resume later."""

    ticket: SessionTicket


@dataclass(frozen=True)
class SessionTicket:
    ticket: bytes
    psk: bytes
    cipher_suite: int
    lifetime: int
    age_add: int
    received_at: float
    server_name: str | None
    alpn: str | None
    max_early_data: int = 0
