"""Test PKI generated on the fly (no keys in git): one RSA root CA, one intermediate, and
leaf certificates of every key type the engine serves (RSA-2048, P-256, P-384, Ed25519)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAMES = ["localhost", "example.test", "*.wild.test"]
LEAF_TYPES = ("rsa", "p256", "p384", "ed25519")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(subject, issuer, pub, signer, ca: bool, names=None, days=365, not_before=None):
    now = datetime.datetime.now(datetime.UTC)
    start = not_before or now - datetime.timedelta(days=1)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(
            x509.KeyUsage(
                True,
                False,
                isinstance(pub, rsa.RSAPublicKey),
                False,
                False,
                False,
                False,
                False,
                False,
            ),
            critical=True,
        )
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names or NAMES]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algo = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(signer, algo)


def _leaf_key(kind: str):
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


def make_pki(directory: str | Path, sites: dict[str, list[str]] | None = None
             ) -> dict[str, Path]:
    """Write ca.pem, chain.pem (the intermediate), <kind>.pem (leaf + intermediate) and
    <kind>.key for every leaf kind, expired.pem/.key, and a P-256 <stem>.pem/.key for the
    host names of each of ``sites`` ({stem: names}, to tell SNI choices apart); return a
    dict of paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key = rsa.generate_private_key(65537, 2048)
    ca = _cert(
        _name("Fata Test Root"),
        _name("Fata Test Root"),
        ca_key.public_key(),
        ca_key,
        True,
        days=3650,
    )
    int_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert(
        _name("Fata Test Intermediate"), ca.subject, int_key.public_key(), ca_key, True, days=3650
    )
    out: dict[str, Path] = {"ca": d / "ca.pem", "chain": d / "chain.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["chain"].write_bytes(inter.public_bytes(serialization.Encoding.PEM))
    pem = serialization.Encoding.PEM
    for kind in LEAF_TYPES:
        key = _leaf_key(kind)
        leaf = _cert(_name(f"fata-{kind}"), inter.subject, key.public_key(), int_key, False)
        (d / f"{kind}.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
        (d / f"{kind}.key").write_bytes(_pem_key(key))
        out[kind] = d / f"{kind}.pem"
        out[f"{kind}.key"] = d / f"{kind}.key"
    for stem, names in (sites or {}).items():
        key = _leaf_key("p256")
        leaf = _cert(_name(stem), inter.subject, key.public_key(), int_key, False, names)
        (d / f"{stem}.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
        (d / f"{stem}.key").write_bytes(_pem_key(key))
        out[stem], out[f"{stem}.key"] = d / f"{stem}.pem", d / f"{stem}.key"
    # An expired leaf for the validation tests.
    key = ec.generate_private_key(ec.SECP256R1())
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=400)
    leaf = _cert(
        _name("fata-expired"),
        inter.subject,
        key.public_key(),
        int_key,
        False,
        days=30,
        not_before=old,
    )
    (d / "expired.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    (d / "expired.key").write_bytes(_pem_key(key))
    out["expired"] = d / "expired.pem"
    out["expired.key"] = d / "expired.key"
    return out
