"""TLS 1.3 and 1.2 on ``cryptography`` primitives: a sans-IO engine plus a Flow adapter.

The protocol is ours (records, handshakes, key schedule, state machines); AEADs, key
exchange, signatures and X.509 come from ``cryptography``.  Use :class:`TLSServer` /
:class:`TLSClient` directly (bytes in, events and bytes out, like h11), or
``fata.tls.flow.accept`` / ``connect`` to get a plaintext ``Flow`` over any ``Flow``.
Randomness and time are injected, never read from the host: ``TLSConfig(random=...)`` (a
``Random`` device's ``bytes``), ``now=`` on the engines and ``clock=`` on the adapter.
"""

from fata.tls.alerts import AlertDescription, TLSAlert, TLSUsageError
from fata.tls.certs import CertifiedKey
from fata.tls.client import TLSClient
from fata.tls.config import TLSConfig
from fata.tls.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    KeyUpdateReceived,
    SessionTicket,
    SessionTicketReceived,
)
from fata.tls.server import TLSServer

__all__ = [
    "AlertDescription",
    "AlertReceived",
    "ApplicationData",
    "CertifiedKey",
    "ConnectionClosed",
    "Event",
    "HandshakeComplete",
    "KeyUpdateReceived",
    "SessionTicket",
    "SessionTicketReceived",
    "TLSAlert",
    "TLSClient",
    "TLSConfig",
    "TLSServer",
    "TLSUsageError",
]
