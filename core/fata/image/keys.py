"""ed25519 signing keys: making them, loading them, and the set of keys an image may be
signed by.

A key is identified by its *key id*, the first 16 hex digits of the SHA-256 of the raw
32-byte public key, which is what manifests and the published index record.  Keys are
stored as PEM (PKCS#8 private, SubjectPublicKeyInfo public) so that ``openssl`` reads them.

When no key is given, images are signed with a *development key*, generated once per user
under ``$XDG_CONFIG_HOME/fata/`` and labelled ``fata development key — not for production``
in every manifest it signs: it proves an image was not modified since this machine built
it, nothing more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fata.image.errors import ImageError
from fata.image.paths import config_home, project_keys_dir

DEV_KEY_LABEL = "fata development key — not for production"
DEV_KEY_NAME = "dev-signing-key"


@dataclass(frozen=True)
class PublicKey:
    """A public key one may trust, with where it came from (for messages)."""

    key: Ed25519PublicKey
    key_id: str
    source: str

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data``."""
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private key with the label its signatures carry."""

    key: Ed25519PrivateKey
    key_id: str
    label: str

    def sign(self, data: bytes) -> bytes:
        """The ed25519 signature of ``data`` (deterministic: same data, same signature)."""
        return self.key.sign(data)


def key_id(public: Ed25519PublicKey) -> str:
    """The 16-hex-digit id of a public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _raw_key_id(raw)


def _raw_key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


# DER of a SubjectPublicKeyInfo for ed25519 (RFC 8410) before its 32 key bytes.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _ed25519_spki(pem: bytes) -> bytes | None:
    """The raw key of a PEM SubjectPublicKeyInfo holding an ed25519 key (the form ``fata
    keygen`` writes), read without cryptography's serialization module, whose import is
    ~14 ms of every ``fata run`` (start-up counts against an appliance's first answer);
    None for anything else, which the general loader then reads."""
    lines = pem.strip().splitlines()
    if (len(lines) < 3 or lines[0].strip() != b"-----BEGIN PUBLIC KEY-----"
            or lines[-1].strip() != b"-----END PUBLIC KEY-----"):
        return None
    try:
        der = base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        return None
    return der[len(_ED25519_SPKI_PREFIX):]


def keygen(out: Path) -> tuple[Path, Path]:
    """Write a new key pair: ``out`` (private, mode 0600) and ``out.pub``; refuse to overwrite."""
    out = Path(out)
    public_path = out.with_name(out.name + ".pub")
    for path in (out, public_path):
        if path.exists():
            raise ImageError(f"{path} exists; not overwriting a key")
    private = Ed25519PrivateKey.generate()
    _write_pair(private, out, public_path)
    return out, public_path


def _write_pair(private: Ed25519PrivateKey, out: Path, public_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    os.replace(tmp, out)


def load_signing_key(path: Path, label: str | None = None) -> SigningKey:
    """Load a private key file; its label defaults to the file name."""
    from cryptography.hazmat.primitives import serialization

    try:
        private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ImageError(f"cannot load signing key {path}: {_first_line(exc)}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ImageError(f"{path} is not an ed25519 private key (make one with `fata keygen`)")
    return SigningKey(private, key_id(private.public_key()), label or Path(path).name)


def load_public_key(path: Path) -> PublicKey:
    """Load a ``.pub`` file (PEM or OpenSSH-free raw SubjectPublicKeyInfo)."""
    try:
        data = Path(path).read_bytes()
        raw = _ed25519_spki(data)
        if raw is not None:
            return PublicKey(Ed25519PublicKey.from_public_bytes(raw), _raw_key_id(raw), str(path))
        from cryptography.hazmat.primitives import serialization

        public = serialization.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise ImageError(f"cannot load public key {path}: {_first_line(exc)}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ImageError(f"{path} is not an ed25519 public key")
    return PublicKey(public, key_id(public), str(path))


def dev_key_path() -> Path:
    """Where this user's development key lives."""
    return config_home() / DEV_KEY_NAME


def dev_signing_key() -> SigningKey:
    """The development key, generated on first use."""
    path = dev_key_path()
    if not path.exists():
        _write_pair(Ed25519PrivateKey.generate(), path, path.with_name(path.name + ".pub"))
    return load_signing_key(path, DEV_KEY_LABEL)


def trusted_keys(extra: list[Path] | tuple[Path, ...] = ()) -> list[PublicKey]:
    """The keys an image may be signed by: the project's published keys (``images/keys/``),
    this user's development key (if it exists) and any given ones."""
    keys: list[PublicKey] = []
    published = project_keys_dir()
    if published is not None and published.is_dir():
        keys.extend(load_public_key(p) for p in sorted(published.glob("*.pub")))
    dev_pub = dev_key_path().with_name(DEV_KEY_NAME + ".pub")
    if dev_pub.is_file():
        keys.append(load_public_key(dev_pub))
    keys.extend(load_public_key(Path(p)) for p in extra)
    return keys


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
