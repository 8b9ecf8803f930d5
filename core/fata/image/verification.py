"""``fata verify``: an image is intact and signed by a trusted key, or the reason it is not.

The order of checks makes the message useful: first that the file is an image at all, then
the signature over the manifest (so a changed manifest is caught before its contents are
believed), then that the members are exactly those the manifest lists, each with the
listed size and SHA-256.  Any difference names the member.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fata.image.archive import ImageArchive
from fata.image.errors import ImageError
from fata.image.keys import PublicKey, load_public_key, trusted_keys
from fata.image.manifest import MANIFEST_NAME, SIGNATURE_NAME, parse, parse_signature


@dataclass
class VerifiedImage:
    """An image whose every byte has been checked: its manifest and members."""

    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    members: dict[str, bytes]
    trusted_by: PublicKey


def read_manifest(archive: ImageArchive) -> tuple[bytes, dict[str, Any]]:
    """The manifest's bytes and content, not yet verified."""
    if MANIFEST_NAME not in archive.infos:
        raise ImageError(f"{archive.path} is not a Fata image (no {MANIFEST_NAME})")
    data = archive.read(MANIFEST_NAME)
    return data, parse(data, str(archive.path))


def check_signature(
    archive: ImageArchive, manifest_bytes: bytes, manifest: dict[str, Any], keys: list[PublicKey]
) -> PublicKey:
    """The trusted key whose signature over the manifest verifies."""
    where = str(archive.path)
    if SIGNATURE_NAME not in archive.infos:
        raise ImageError(f"{where} is not signed (no {SIGNATURE_NAME})")
    key_id, signature = parse_signature(archive.read(SIGNATURE_NAME), where)
    if key_id != manifest["key_id"]:
        raise ImageError(f"{where}: SIGNATURE names key {key_id} but the manifest says "
                         f"{manifest['key_id']}")
    candidates = [k for k in keys if k.key_id == key_id]
    if not candidates:
        label = manifest.get("key_label", "?")
        raise ImageError(
            f"{where} is signed by key {key_id} ({label}), which is not trusted here "
            f"(trust it with --trust KEY.pub, or put it in images/keys/)"
        )
    for key in candidates:
        if key.verify(signature, manifest_bytes):
            return key
    raise ImageError(f"{where}: {MANIFEST_NAME} differs from what key {key_id} signed "
                     f"(the signature does not verify)")


def verify_image(image: Path, keys: list[PublicKey]) -> VerifiedImage:
    """Check everything about ``image`` against ``keys``; return its verified contents."""
    image = Path(image)
    with ImageArchive(image) as archive:
        manifest_bytes, manifest = read_manifest(archive)
        key = check_signature(archive, manifest_bytes, manifest, keys)
        listed = {entry["path"]: entry for entry in manifest["files"]}
        for name in archive.names():
            if name not in listed and name not in (MANIFEST_NAME, SIGNATURE_NAME):
                raise ImageError(f"{image}: member {name} is not in the manifest")
        members: dict[str, bytes] = {}
        for name, entry in listed.items():
            if name not in archive.infos:
                raise ImageError(f"{image}: member {name} is listed in the manifest but missing")
            data = archive.read(name)
            if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ImageError(f"{image}: member {name} differs from its manifest entry "
                                 f"(sha256 {hashlib.sha256(data).hexdigest()[:16]}..., "
                                 f"expected {entry['sha256'][:16]}...)")
            members[name] = data
    return VerifiedImage(image, manifest, manifest_bytes, members, key)


def verify(
    image: Path, key: Path | None = None, trust: list[Path] | tuple[Path, ...] = ()
) -> dict[str, Any]:
    """Verify ``image``: against ``key`` alone when given, else against the trusted keys
    (the project's published keys, this user's development key, and ``trust``).
    Returns the manifest; raises ``ImageError`` naming what differs."""
    keys = [load_public_key(Path(key))] if key is not None else trusted_keys(list(trust))
    return verify_image(Path(image), keys).manifest
