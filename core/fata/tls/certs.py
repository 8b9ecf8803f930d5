"""Certificates: loading the server's PEM chain and key, choosing one by SNI, and verifying a
peer's chain against a trust store with hostname checks (``cryptography.x509.verification``).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from fata.tls.alerts import AlertDescription, TLSAlert
from fata.tls.sigalgs import key_family


@dataclass
class CertifiedKey:
    """A certificate chain (leaf first) and the leaf's private key."""

    chain: list[x509.Certificate]
    key: object
    der_chain: list[bytes] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.chain:
            raise ValueError("empty certificate chain")
        self.der_chain = [c.public_bytes(serialization.Encoding.DER) for c in self.chain]
        leaf = self.chain[0]
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            self.names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
        except x509.ExtensionNotFound:
            self.names = []
        if not self.names:
            cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            self.names = [str(cn.value).lower() for cn in cns]
        if key_family(self.key) not in ("rsa", "ecdsa", "ed25519"):
            raise ValueError("unsupported private key type")

    @property
    def family(self) -> str:
        return key_family(self.key)

    @classmethod
    def from_pem(
        cls, cert_pem: bytes, key_pem: bytes, password: bytes | None = None
    ) -> CertifiedKey:
        chain = x509.load_pem_x509_certificates(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password)
        return cls(chain, key)

    @classmethod
    def from_files(cls, cert_path: str | Path, key_path: str | Path) -> CertifiedKey:
        return cls.from_pem(Path(cert_path).read_bytes(), Path(key_path).read_bytes())

    def matches(self, server_name: str) -> bool:
        name = server_name.lower().rstrip(".")
        for pattern in self.names:
            if pattern == name:
                return True
            if pattern.startswith("*.") and "." in name:
                if name.split(".", 1)[1] == pattern[2:]:
                    return True
        return False


def load_pem_certificates(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def verify_chain(
    der_chain: list[bytes],
    trust_store: list[x509.Certificate],
    server_name: str | None,
    now: float,
) -> x509.Certificate:
    """Validate the peer chain; return the leaf.  Failures map to the RFC's alerts."""
    try:
        certs = [x509.load_der_x509_certificate(d) for d in der_chain]
    except ValueError:
        raise TLSAlert(AlertDescription.bad_certificate, "unparsable certificate") from None
    if not certs:
        raise TLSAlert(AlertDescription.certificate_required, "empty certificate list")
    if server_name is None:
        raise TLSAlert(AlertDescription.internal_error, "no name to verify the certificate")
    try:
        subject: verification.DNSName | verification.IPAddress
        try:
            subject = verification.IPAddress(ipaddress.ip_address(server_name))
        except ValueError:
            subject = verification.DNSName(server_name)
        when = datetime.datetime.fromtimestamp(now, datetime.UTC)
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(trust_store))
            .time(when)
            .build_server_verifier(subject)
        )
        verifier.verify(certs[0], certs[1:])
    except verification.VerificationError as exc:
        msg = str(exc)
        if "expired" in msg or "not yet valid" in msg or "validity" in msg:
            desc = AlertDescription.certificate_expired
        elif "issuer" in msg or "candidates exhausted" in msg:
            desc = AlertDescription.unknown_ca
        else:
            desc = AlertDescription.bad_certificate
        raise TLSAlert(desc, msg) from None
    except ValueError as exc:
        raise TLSAlert(AlertDescription.bad_certificate, str(exc)) from None
    return certs[0]
