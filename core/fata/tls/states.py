"""The handshake states of both sides, and which state may follow which.

In the style of h11's ``_state.py``: the states are enums, not strings, and the moves between
them are a table.  The machines (``server.py``, ``tls12.py``, ``client.py``) change state only
through ``TLSConnection._to``, which refuses a move the table does not list; a handler that
skipped a check then ends the connection with an internal_error alert instead of drifting
into a state where other messages would be accepted.
"""

from __future__ import annotations

import enum


class ServerState(enum.Enum):
    """Where a server is in the handshake; the ``TLS12_*`` states are the TLS 1.2 path."""

    WAIT_CH = "wait_ch"
    """Expecting the first ClientHello."""
    WAIT_CH2 = "wait_ch2"
    """HelloRetryRequest sent: expecting the second ClientHello."""
    WAIT_FINISHED = "wait_finished"
    """TLS 1.3 flight sent (ServerHello .. Finished): expecting the client Finished."""
    TLS12_WAIT_CKE = "12_wait_cke"
    """TLS 1.2 ServerHelloDone sent: expecting ClientKeyExchange."""
    TLS12_WAIT_CCS = "12_wait_ccs"
    """TLS 1.2 keys derived: expecting ChangeCipherSpec."""
    TLS12_WAIT_FINISHED = "12_wait_finished"
    """TLS 1.2 reading protected: expecting the client Finished."""
    CONNECTED = "connected"
    """Handshake complete: application data, KeyUpdate (1.3), refused renegotiation (1.2)."""


class ClientState(enum.Enum):
    """Where a (TLS 1.3) client is in the handshake; a HelloRetryRequest keeps ``WAIT_SH``."""

    WAIT_SH = "wait_sh"
    """ClientHello sent: expecting ServerHello (or HelloRetryRequest)."""
    WAIT_EE = "wait_ee"
    """Handshake keys in place: expecting EncryptedExtensions."""
    WAIT_CERT_CR = "wait_cert_cr"
    """Expecting Certificate or CertificateRequest."""
    WAIT_CERT = "wait_cert"
    """CertificateRequest seen: expecting Certificate."""
    WAIT_CV = "wait_cv"
    """Expecting CertificateVerify."""
    WAIT_FINISHED = "wait_finished"
    """Expecting the server Finished (directly after EncryptedExtensions when resuming)."""
    CONNECTED = "connected"
    """Handshake complete: application data, NewSessionTicket, KeyUpdate."""


_S = ServerState
_C = ClientState

SERVER_TRANSITIONS: dict[ServerState, frozenset[ServerState]] = {
    _S.WAIT_CH: frozenset((_S.WAIT_CH2, _S.WAIT_FINISHED, _S.TLS12_WAIT_CKE)),
    _S.WAIT_CH2: frozenset((_S.WAIT_FINISHED,)),
    _S.WAIT_FINISHED: frozenset((_S.CONNECTED,)),
    _S.TLS12_WAIT_CKE: frozenset((_S.TLS12_WAIT_CCS,)),
    _S.TLS12_WAIT_CCS: frozenset((_S.TLS12_WAIT_FINISHED,)),
    _S.TLS12_WAIT_FINISHED: frozenset((_S.CONNECTED,)),
    _S.CONNECTED: frozenset(),
}
"""Server moves: state -> the states it may go to next."""

CLIENT_TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    _C.WAIT_SH: frozenset((_C.WAIT_EE,)),
    _C.WAIT_EE: frozenset((_C.WAIT_CERT_CR, _C.WAIT_FINISHED)),
    _C.WAIT_CERT_CR: frozenset((_C.WAIT_CERT, _C.WAIT_CV)),
    _C.WAIT_CERT: frozenset((_C.WAIT_CV,)),
    _C.WAIT_CV: frozenset((_C.WAIT_FINISHED,)),
    _C.WAIT_FINISHED: frozenset((_C.CONNECTED,)),
    _C.CONNECTED: frozenset(),
}
"""Client moves: state -> the states it may go to next."""
