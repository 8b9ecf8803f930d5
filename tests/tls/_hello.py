"""Hand-built ClientHellos for negative tests: every field chosen by the test."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fata.tls import extensions as X
from fata.tls.codec import u16, u16_list, vec8, vec16
from fata.tls.messages import CLIENT_HELLO, handshake


def x25519_share() -> bytes:
    key = x25519.X25519PrivateKey.generate()
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def tls13_extensions(groups=(29,), shares=None, versions=(0x0304,), extra=b"") -> bytes:
    shares = [(29, x25519_share())] if shares is None else shares
    return (
        X.ext(X.SUPPORTED_VERSIONS, vec8(b"".join(u16(v) for v in versions)))
        + X.ext(X.SUPPORTED_GROUPS, u16_list(groups))
        + X.ext(X.SIGNATURE_ALGORITHMS, u16_list([0x0403, 0x0804, 0x0807]))
        + X.ext(X.KEY_SHARE, vec16(b"".join(u16(g) + vec16(k) for g, k in shares)))
        + extra
    )


def tls12_extensions(groups=(29, 23), extra=b"") -> bytes:
    return (
        X.ext(X.SUPPORTED_GROUPS, u16_list(groups))
        + X.ext(X.SIGNATURE_ALGORITHMS, u16_list([0x0403, 0x0804, 0x0401]))
        + X.ext(X.EC_POINT_FORMATS, vec8(b"\x00"))
        + X.ext(X.EXTENDED_MASTER_SECRET)
        + X.ext(X.RENEGOTIATION_INFO, b"\x00")
        + extra
    )


def client_hello(
    extensions: bytes | None,
    suites=(0x1301,),
    legacy_version: int = 0x0303,
    session_id: bytes = b"",
    record_version: bytes = b"\x03\x01",
) -> bytes:
    """A ClientHello in one plaintext record."""
    body = u16(legacy_version) + os.urandom(32) + vec8(session_id) + u16_list(suites) + b"\x01\x00"
    if extensions is not None:
        body += vec16(extensions)
    msg = handshake(CLIENT_HELLO, body)
    return b"\x16" + record_version + len(msg).to_bytes(2, "big") + msg
