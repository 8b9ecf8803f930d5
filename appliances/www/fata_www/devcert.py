"""The development certificate: what HTTPS serves when no ``--tls-cert`` is given.

``fata build`` calls :func:`generate` (``kv_ro("data/devcert", generate=...)`` in
``config.py``), which bakes into the image a P-256 certificate for ``localhost``,
``127.0.0.1``, ``::1`` and the direct stack's ``10.77.0.2``, signed by a local development
CA.  The CA and the leaf are made once per user and kept in
``$XDG_STATE_HOME/fata/www-devcert/`` (``~/.local/state/...``), never in git and never in
the image for the CA's key: rebuilding on the same machine gives the same bytes (the image
stays reproducible there), and ``curl --cacert ~/.local/state/fata/www-devcert/ca.pem``
trusts every build made by that user.  A leaf within 30 days of its end is made again.

The key is a development key, readable by anyone who has the image: use ``--tls-cert`` and
``--tls-key`` for anything public.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DNS_NAMES = ("localhost",)
IP_NAMES = ("127.0.0.1", "::1", "10.77.0.2")
LEAF_DAYS = 397  # the longest validity browsers accept for a leaf
CA_DAYS = 3650
RENEW_BEFORE = datetime.timedelta(days=30)
CERT_FILE, KEY_FILE, CA_FILE = "cert.pem", "key.pem", "ca.pem"


def state_dir() -> Path:
    """Where the development CA and leaf live (``$XDG_STATE_HOME/fata/www-devcert``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return Path(base) / "fata" / "www-devcert"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fata development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Fata development CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _make_leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
               now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_NAMES]
    cert = (x509.CertificateBuilder().subject_name(_name("localhost"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(min(now + datetime.timedelta(days=LEAF_DAYS),
                                 ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure(directory: Path | None = None, now: datetime.datetime | None = None) -> Path:
    """The state directory with a valid CA (``ca.pem``, ``ca-key.pem``) and leaf
    (``cert.pem``, ``key.pem``), made or renewed as needed."""
    directory = directory or state_dir()
    now = now or datetime.datetime.now(datetime.UTC)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_path, ca_key_path = directory / CA_FILE, directory / "ca-key.pem"
    ca = ca_key = None
    if ca_path.is_file() and ca_key_path.is_file():
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        ca_key = loaded if isinstance(loaded, ec.EllipticCurvePrivateKey) else None
        if ca_key is None or ca.not_valid_after_utc - RENEW_BEFORE < now:
            ca = ca_key = None
    fresh_ca = ca is None or ca_key is None
    if fresh_ca:
        ca_key, ca = _make_ca(now)
        _write_private(ca_key_path, _pem_key(ca_key))
        ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    assert ca is not None and ca_key is not None
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if not fresh_ca and cert_path.is_file() and key_path.is_file():
        leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if leaf.issuer == ca.subject and leaf.not_valid_after_utc - RENEW_BEFORE >= now:
            return directory
    key, leaf = _make_leaf(ca_key, ca, now)
    _write_private(key_path, _pem_key(key))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return directory


def generate(out: Path, epoch: int) -> None:
    """The build hook: the leaf, its key and the CA's certificate into ``out``."""
    del epoch  # validity follows the real date: certificates are checked against it
    source = ensure()
    for name in (CERT_FILE, KEY_FILE, CA_FILE):
        shutil.copyfile(source / name, out / name)
