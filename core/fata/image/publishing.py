"""``fata publish IMAGES... --index DIR``: put verified images in a directory with an index.

``index.json`` lists each image with what ``fata pull`` needs to choose and check it: name,
version, target, configure-time keys, Python, size, SHA-256 of the file, the ed25519
signature over its manifest and the signing key's id and label, and the image's URL
relative to the index.  Only images that verify here are published.  An existing index is
updated in place (an image with the same file name replaces the old entry), and the output
is deterministic (entries sorted, keys sorted).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from fata.image.archive import ImageArchive
from fata.image.errors import ImageError
from fata.image.keys import trusted_keys
from fata.image.manifest import SIGNATURE_NAME, parse_signature
from fata.image.verification import verify_image

INDEX_FORMAT = "fata-index/1"
INDEX_NAME = "index.json"


def entry_for(image: Path, trust: list[Path] | tuple[Path, ...] = ()) -> dict[str, Any]:
    """The index entry of a verified image (its URL is its file name)."""
    verified = verify_image(Path(image), trusted_keys(list(trust)))
    manifest = verified.manifest
    data = Path(image).read_bytes()
    with ImageArchive(Path(image)) as archive:
        key_id, signature = parse_signature(archive.read(SIGNATURE_NAME), str(image))
    return {
        "name": manifest["name"],
        "version": manifest["version"],
        "target": manifest["target"],
        "keys": manifest.get("keys", {}),
        "python": manifest["python"],
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "signature": base64.b64encode(signature).decode("ascii"),
        "key_id": key_id,
        "key_label": manifest.get("key_label", ""),
        "url": Path(image).name,
    }


def read_index(path: Path) -> list[dict[str, Any]]:
    """The entries of an existing local index (none if there is no index yet)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable index ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or not isinstance(
        doc.get("images"), list
    ):
        raise ImageError(f"{path}: not a {INDEX_FORMAT} index")
    return [e for e in doc["images"] if isinstance(e, dict)]


def publish(images: list[Path], index_dir: Path,
            trust: list[Path] | tuple[Path, ...] = ()) -> Path:
    """Copy ``images`` into ``index_dir`` and write its ``index.json``; return the index path."""
    if not images:
        raise ImageError("no images to publish")
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    index_path = index_dir / INDEX_NAME
    entries = {e.get("url"): e for e in read_index(index_path)}
    for image in images:
        image = Path(image)
        entry = entry_for(image, trust)
        destination = index_dir / image.name
        if image.resolve() != destination.resolve():
            tmp = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
            shutil.copyfile(image, tmp)
            os.replace(tmp, destination)
        entries[entry["url"]] = entry
    ordered = sorted(entries.values(), key=lambda e: (e.get("name", ""), e.get("version", ""),
                                                      e.get("url", "")))
    text = json.dumps({"format": INDEX_FORMAT, "images": ordered}, indent=1, sort_keys=True,
                      ensure_ascii=False) + "\n"
    tmp = index_path.with_name(f".{INDEX_NAME}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, index_path)
    return index_path
