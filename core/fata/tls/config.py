"""Configuration shared by many connections: certificates, trust, policy, randomness.

Secrets that must survive across connections (the ticket and cookie keys) live here, so a
server resumes sessions exactly as long as it keeps using the same config object.

There is no default random source: the engine is sans-IO, so the caller hands it one (an
appliance passes its ``Random`` device's ``bytes``; tests pass a seeded or scripted source
to reproduce traces).  The ticket and cookie keys, when not given, are drawn from that same
source when the config is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from fata.tls.certs import CertifiedKey
from fata.tls.groups import DEFAULT_GROUPS
from fata.tls.sigalgs import ADVERTISED_SCHEMES
from fata.tls.suites import DEFAULT_TLS12_SUITES, DEFAULT_TLS13_SUITES, TLS12, TLS13


@dataclass(kw_only=True)
class TLSConfig:
    """Policy and credentials.  Defaults are the modern, interoperable choice; only the
    random source is required (``TLSConfig(random=rng.bytes, certificates=[...])``)."""

    random: Callable[[int], bytes]
    """The only source of randomness (randoms, key shares, tickets, and the ticket and cookie
    keys below when they are not given): a ``fata.devices.Random``'s ``bytes``, or a fixed
    source to reproduce traces."""
    certificates: list[CertifiedKey] = field(default_factory=list)
    """Server: chains to serve; the first whose names match the SNI wins, else the first."""
    trust_store: list[x509.Certificate] = field(default_factory=list)
    """Client: trust anchors for the server's chain."""
    verify_peer: bool = True
    """Client: validate the chain and host name (turn off only in tests)."""
    alpn_protocols: list[str] = field(default_factory=list)
    cipher_suites: tuple[int, ...] = DEFAULT_TLS13_SUITES + DEFAULT_TLS12_SUITES
    groups: tuple[int, ...] = DEFAULT_GROUPS
    signature_schemes: tuple[int, ...] = ADVERTISED_SCHEMES
    min_version: int = TLS12
    max_version: int = TLS13
    middlebox_compat: bool = True
    """Client: send a legacy session id and a dummy ChangeCipherSpec (RFC 8446 D.4)."""
    pad_to: int = 0
    """TLS 1.3: pad every protected record to a multiple of this many bytes (0: no padding)."""
    record_size_limit: int | None = None
    """Advertise RFC 8449 record_size_limit (we always honour the peer's)."""
    session_tickets: int = 2
    """Server: NewSessionTicket messages sent after each full handshake (0 disables)."""
    ticket_lifetime: int = 7200
    ticket_key: bytes = b""
    """Server: AES-256-GCM key sealing session tickets; empty: 32 bytes from ``random``."""
    cookie_key: bytes = b""
    """Server: HMAC key of HelloRetryRequest cookies; empty: 32 bytes from ``random``."""
    key_share_groups: tuple[int, ...] | None = None
    """Client: groups to send key shares for up front (default: the first of ``groups``)."""
    max_handshake_message: int = 1 << 17
    """Largest handshake message accepted (a ClientHello can legally approach 2^16 bytes of
    extensions alone; certificate chains rarely exceed 16 KiB)."""
    max_early_data_skip: int = 1 << 16

    def __post_init__(self) -> None:
        if self.min_version not in (TLS12, TLS13) or self.max_version not in (TLS12, TLS13):
            raise ValueError("only TLS 1.2 and 1.3 are supported")
        if self.pad_to < 0 or self.pad_to > 1 << 14:
            raise ValueError("pad_to out of range")
        if not self.ticket_key:
            self.ticket_key = self.random(32)
        if not self.cookie_key:
            self.cookie_key = self.random(32)
