"""Key exchange groups: X25519, secp256r1, secp384r1, plus X448 and secp521r1 (ECDHE for
both TLS versions).

Private keys are derived from bytes of the connection's random source, so a test that
fixes the randomness (RFC 8448 traces) fixes the key shares too.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fata.tls.alerts import AlertDescription, TLSAlert

SECP256R1 = 23
SECP384R1 = 24
SECP521R1 = 25
X25519 = 29
X448 = 30
GROUP_NAMES = {
    X25519: "x25519",
    SECP256R1: "secp256r1",
    SECP384R1: "secp384r1",
    X448: "x448",
    SECP521R1: "secp521r1",
}
DEFAULT_GROUPS = (X25519, SECP256R1, SECP384R1, X448, SECP521R1)


def is_obsolete(group: int) -> bool:
    """Code points of TLS 1.2-era curves that TLS 1.3 must never see (RFC 8446 B.3.1.4)."""
    return 0x0001 <= group <= 0x0016 or 0x001A <= group <= 0x001C or group in (0xFF01, 0xFF02)


_CURVES = {
    SECP256R1: (ec.SECP256R1(), 32, 65),
    SECP384R1: (ec.SECP384R1(), 48, 97),
    SECP521R1: (ec.SECP521R1(), 66, 133),
}
_ORDERS = {
    SECP256R1: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    SECP384R1: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    SECP521R1: int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}


class KeyShare:
    """One ephemeral private key and its public encoding on the wire."""

    __slots__ = ("group", "private", "public")

    def __init__(self, group: int, random: Callable[[int], bytes]) -> None:
        self.group = group
        if group == X25519:
            self.private = x25519.X25519PrivateKey.from_private_bytes(random(32))
            self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif group == X448:
            self.private = x448.X448PrivateKey.from_private_bytes(random(56))
            self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif group in _CURVES:
            curve, size, _ = _CURVES[group]
            scalar = int.from_bytes(random(size + 8), "big") % (_ORDERS[group] - 1) + 1
            self.private = ec.derive_private_key(scalar, curve)
            self.public = self.private.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
        else:
            raise ValueError(f"unsupported group {group}")

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's share; a bad share is ``illegal_parameter``."""
        try:
            if self.group == X25519:
                if len(peer_public) != 32:
                    raise ValueError("bad x25519 share length")
                peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
                return self.private.exchange(peer)
            if self.group == X448:
                if len(peer_public) != 56:
                    raise ValueError("bad x448 share length")
                return self.private.exchange(x448.X448PublicKey.from_public_bytes(peer_public))
            curve, _, plen = _CURVES[self.group]
            if len(peer_public) != plen or peer_public[0] != 4:
                raise ValueError("not an uncompressed point")
            peer_ec = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer_public)
            return self.private.exchange(ec.ECDH(), peer_ec)
        except ValueError as exc:
            raise TLSAlert(AlertDescription.illegal_parameter, f"bad key share: {exc}") from None
