"""TLS alerts: the protocol's only error channel, and the exception that carries one.

Every parser and state-machine check raises :class:`TLSAlert` with the description the RFCs
prescribe; the connection catches it at the edge (``receive_data``), sends the alert and
closes.  Callers therefore never see a parsing exception, only a ``ConnectionClosed`` event.
"""

from __future__ import annotations

import enum


class AlertLevel(enum.IntEnum):
    """Alert levels (RFC 5246 7.2); TLS 1.3 treats everything but close_notify as fatal."""

    WARNING = 1
    FATAL = 2


class AlertDescription(enum.IntEnum):
    """Alert descriptions (RFC 8446 6 plus the TLS 1.2 ones still on the wire)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120

    @classmethod
    def from_int(cls, value: int) -> AlertDescription | int:
        """The enum member, or the bare integer for descriptions we do not know."""
        try:
            return cls(value)
        except ValueError:
            return value


class TLSAlert(Exception):
    """A protocol violation detected locally: the connection must send ``description``."""

    def __init__(self, description: AlertDescription, reason: str = "") -> None:
        super().__init__(f"{description.name}: {reason}" if reason else description.name)
        self.description = description
        self.reason = reason


class TLSUsageError(Exception):
    """The caller used the engine wrongly (e.g. sent data before the handshake finished)."""
