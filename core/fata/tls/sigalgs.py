"""Signature schemes: which ones a key can make, and signing/verifying with them.

TLS 1.3 allows RSA only with PSS (rsa_pss_rsae_*) in CertificateVerify; PKCS#1 v1.5 is
accepted only for TLS 1.2 ServerKeyExchange and inside certificates (checked by the X.509
verifier, not here).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from fata.tls.alerts import AlertDescription, TLSAlert

RSA_PKCS1_SHA256 = 0x0401
RSA_PKCS1_SHA384 = 0x0501
RSA_PKCS1_SHA512 = 0x0601
ECDSA_SECP256R1_SHA256 = 0x0403
ECDSA_SECP384R1_SHA384 = 0x0503
ECDSA_SECP521R1_SHA512 = 0x0603
RSA_PSS_RSAE_SHA256 = 0x0804
RSA_PSS_RSAE_SHA384 = 0x0805
RSA_PSS_RSAE_SHA512 = 0x0806
ED25519 = 0x0807

SCHEME_NAMES = {
    RSA_PKCS1_SHA256: "rsa_pkcs1_sha256",
    RSA_PKCS1_SHA384: "rsa_pkcs1_sha384",
    RSA_PKCS1_SHA512: "rsa_pkcs1_sha512",
    ECDSA_SECP256R1_SHA256: "ecdsa_secp256r1_sha256",
    ECDSA_SECP384R1_SHA384: "ecdsa_secp384r1_sha384",
    ECDSA_SECP521R1_SHA512: "ecdsa_secp521r1_sha512",
    RSA_PSS_RSAE_SHA256: "rsa_pss_rsae_sha256",
    RSA_PSS_RSAE_SHA384: "rsa_pss_rsae_sha384",
    RSA_PSS_RSAE_SHA512: "rsa_pss_rsae_sha512",
    ED25519: "ed25519",
}

TLS13_SCHEMES = (
    ECDSA_SECP256R1_SHA256,
    ECDSA_SECP384R1_SHA384,
    ECDSA_SECP521R1_SHA512,
    ED25519,
    RSA_PSS_RSAE_SHA256,
    RSA_PSS_RSAE_SHA384,
    RSA_PSS_RSAE_SHA512,
)
TLS12_SCHEMES = (*TLS13_SCHEMES, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512)
# What we advertise in signature_algorithms: the TLS 1.3 set plus PKCS#1 for certificates.
ADVERTISED_SCHEMES = TLS12_SCHEMES

_HASHES = {
    RSA_PKCS1_SHA256: hashes.SHA256,
    RSA_PKCS1_SHA384: hashes.SHA384,
    RSA_PKCS1_SHA512: hashes.SHA512,
    ECDSA_SECP256R1_SHA256: hashes.SHA256,
    ECDSA_SECP384R1_SHA384: hashes.SHA384,
    ECDSA_SECP521R1_SHA512: hashes.SHA512,
    RSA_PSS_RSAE_SHA256: hashes.SHA256,
    RSA_PSS_RSAE_SHA384: hashes.SHA384,
    RSA_PSS_RSAE_SHA512: hashes.SHA512,
}
_EC_CURVE_FOR = {
    ECDSA_SECP256R1_SHA256: "secp256r1",
    ECDSA_SECP384R1_SHA384: "secp384r1",
    ECDSA_SECP521R1_SHA512: "secp521r1",
}


def key_family(key: object) -> str:
    """'rsa', 'ecdsa' or 'ed25519' for a private or public key."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ecdsa"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    return "unknown"


def schemes_for_key(key: object, tls13: bool) -> tuple[int, ...]:
    """The schemes this key can sign with, in our order of preference."""
    family = key_family(key)
    if family == "rsa":
        pss = (RSA_PSS_RSAE_SHA256, RSA_PSS_RSAE_SHA384, RSA_PSS_RSAE_SHA512)
        return pss if tls13 else (*pss, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512)
    if family == "ecdsa":
        name = key.curve.name  # type: ignore[attr-defined]
        if tls13:
            return tuple(s for s, c in _EC_CURVE_FOR.items() if c == name)
        # TLS 1.2: the scheme names the hash only; prefer the curve's natural one.
        natural = tuple(s for s, c in _EC_CURVE_FOR.items() if c == name)
        return natural + tuple(s for s in _EC_CURVE_FOR if s not in natural)
    if family == "ed25519":
        return (ED25519,)
    return ()


def _pss(h: hashes.HashAlgorithm) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)


def sign(key: object, scheme: int, data: bytes) -> bytes:
    if scheme == ED25519:
        return key.sign(data)  # type: ignore[attr-defined]
    h = _HASHES[scheme]()
    if scheme in (RSA_PSS_RSAE_SHA256, RSA_PSS_RSAE_SHA384, RSA_PSS_RSAE_SHA512):
        return key.sign(data, _pss(h), h)  # type: ignore[attr-defined]
    if scheme in (RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512):
        return key.sign(data, padding.PKCS1v15(), h)  # type: ignore[attr-defined]
    return key.sign(data, ec.ECDSA(h))  # type: ignore[attr-defined]


def verify(public_key: object, scheme: int, signature: bytes, data: bytes, tls13: bool) -> None:
    """Check a CertificateVerify / ServerKeyExchange signature; failures are alerts."""
    family = key_family(public_key)
    allowed = (
        schemes_for_key(public_key, tls13) if family != "ecdsa" or tls13 else tuple(_EC_CURVE_FOR)
    )
    if scheme not in allowed:
        raise TLSAlert(AlertDescription.illegal_parameter, "signature scheme does not fit key")
    try:
        if scheme == ED25519:
            public_key.verify(signature, data)  # type: ignore[attr-defined]
            return
        h = _HASHES[scheme]()
        if scheme in (RSA_PSS_RSAE_SHA256, RSA_PSS_RSAE_SHA384, RSA_PSS_RSAE_SHA512):
            public_key.verify(signature, data, _pss(h), h)  # type: ignore[attr-defined]
        elif scheme in (RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512):
            public_key.verify(signature, data, padding.PKCS1v15(), h)  # type: ignore[attr-defined]
        else:
            public_key.verify(signature, data, ec.ECDSA(h))  # type: ignore[attr-defined]
    except (InvalidSignature, ValueError):
        raise TLSAlert(AlertDescription.decrypt_error, "bad signature") from None
