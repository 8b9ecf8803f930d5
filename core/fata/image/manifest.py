"""The manifest: what an image is and every file it holds, and the signature over it.

An image's ``MANIFEST.json`` records the appliance (name, version, target, configure-time
keys, the whole baked configuration), the Python it was built for, the build epoch, the
signing key's id and label, and every other member with its size, SHA-256 and kind
(``appliance``, ``fata``, ``stdlib``, ``third-party``, ``data``, ``image`` or
``interpreter``; an interpreter file also has its ``origin``: the Debian package and version
it came from, or "not from a package: PATH").  A self-contained image's ``interpreter``
section names its binary, loader, library directory, launcher, Python version and origins;
``python`` then says what its bytecode is for, not what must run it.  ``bytecode`` says how
the modules were compiled (docstrings stripped but where code reads them, asserts kept,
column positions dropped) and ``frozen`` which modules the image runs from the
interpreter's frozen copies instead of members.  ``SIGNATURE``
holds an ed25519 signature over the exact bytes of ``MANIFEST.json``; since the manifest
pins every member's digest, the signature seals the whole image.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import sys
import sysconfig
from typing import Any

from fata.image.errors import ImageError

FORMAT = "fata-image/1"
MANIFEST_NAME = "MANIFEST.json"
SIGNATURE_NAME = "SIGNATURE"
KINDS = ("appliance", "fata", "stdlib", "third-party", "data", "image", "interpreter")


def python_tag() -> dict[str, str]:
    """The interpreter an image's bytecode and extension modules are built for."""
    return {
        "implementation": sys.implementation.name,
        "version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "cache_tag": sys.implementation.cache_tag or "",
        "magic": importlib.util.MAGIC_NUMBER.hex(),
        "platform": sysconfig.get_platform(),
        "soabi": sysconfig.get_config_var("SOABI") or "",
    }


def python_mismatch(recorded: dict[str, Any]) -> str | None:
    """Why this interpreter cannot run an image built for ``recorded`` (None if it can)."""
    here = python_tag()
    for field in ("implementation", "version", "magic", "platform", "soabi"):
        if recorded.get(field) != here[field]:
            return (
                f"the image was built for {recorded.get('implementation')} "
                f"{recorded.get('version')} on {recorded.get('platform')} "
                f"({field} {recorded.get(field)!r}), but this is {here['implementation']} "
                f"{here['version']} on {here['platform']} ({field} {here[field]!r})"
            )
    return None


def dumps(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes of a manifest: sorted keys (so the same image, the same bytes),
    compact separators (whitespace deflates well: the DNS image's manifest is only 1%
    smaller stored than indented) and one line per file entry, so that it stays greppable
    (``fata inspect`` is how a person reads it)."""
    parts = []
    for key in sorted(manifest):
        value = manifest[key]
        if key == "files" and isinstance(value, list):
            text = "[\n" + ",\n".join(_compact(e) for e in value) + "\n]"
        else:
            text = _compact(value)
        parts.append(f"{_compact(key)}:{text}")
    return ("{" + ",\n".join(parts) + "}\n").encode()


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def signature_bytes(key_id: str, signature: bytes) -> bytes:
    """The ``SIGNATURE`` member."""
    doc = {"algorithm": "ed25519", "key_id": key_id,
           "signature": base64.b64encode(signature).decode("ascii")}
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def parse_signature(data: bytes, where: str) -> tuple[str, bytes]:
    """(key id, raw signature) from a ``SIGNATURE`` member."""
    try:
        doc = json.loads(data)
        if doc.get("algorithm") != "ed25519":
            raise ValueError(f"algorithm {doc.get('algorithm')!r}")
        key_id = doc["key_id"]
        raw = base64.b64decode(doc["signature"], validate=True)
        if not isinstance(key_id, str) or len(raw) != 64:
            raise ValueError("malformed")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise ImageError(f"{where}: SIGNATURE is not a valid ed25519 signature ({exc})") from None
    return key_id, raw


def parse(data: bytes, where: str) -> dict[str, Any]:
    """A manifest from its bytes, with the fields every tool relies on checked."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{where}: MANIFEST.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ImageError(f"{where}: not a {FORMAT} manifest (format {found!r})")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ImageError(f"{where}: manifest has no file list")
    for entry in files:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("path"), str)
            or not isinstance(entry.get("size"), int)
            or not isinstance(entry.get("sha256"), str)
            or entry.get("kind") not in KINDS
        ):
            raise ImageError(f"{where}: malformed manifest entry {entry!r:.80}")
    for field in ("name", "version", "target", "key_id", "main"):
        if not isinstance(manifest.get(field), str):
            raise ImageError(f"{where}: manifest has no {field}")
    if not isinstance(manifest.get("python"), dict) or not isinstance(manifest.get("config"), dict):
        raise ImageError(f"{where}: manifest has no python or config section")
    return manifest
