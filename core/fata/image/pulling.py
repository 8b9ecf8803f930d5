"""``fata pull NAME[:VERSION] --index URL``: download a published image and trust it only
once it verifies.

The index is fetched over http(s) or ``file://`` (a plain path works too), the entry is
chosen (the newest version unless one is named; an image's file stem such as
``dns-0.1.0-unix-direct`` names one exactly), and the image is streamed to a temporary
file beside its destination with a progress bar on stderr while its SHA-256 is computed.
It is kept only if its size and digest match the index, its signature matches the index's,
and it verifies against the trusted keys (the project's published ``images/keys/``, the
local development key and any ``--trust`` key).  Anything else removes the partial file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

from fata.image.archive import ImageArchive
from fata.image.errors import ImageError
from fata.image.keys import trusted_keys
from fata.image.manifest import SIGNATURE_NAME, parse_signature
from fata.image.paths import repo_root_for
from fata.image.publishing import INDEX_FORMAT, INDEX_NAME
from fata.image.verification import verify_image

TIMEOUT_SECONDS = 30
_CHUNK = 64 * 1024
_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.fata$")


def index_location(index: str) -> str:
    """The URL of ``index.json`` for what the user gave (a URL or path, to a dir or the file)."""
    parsed = urllib.parse.urlparse(index)
    if parsed.scheme in ("http", "https", "file"):
        url = index
    elif parsed.scheme == "" or len(parsed.scheme) == 1:  # a path (or a Windows drive)
        path = Path(index).resolve()
        url = path.as_uri() + ("/" if path.is_dir() else "")
    else:
        raise ImageError(f"index URL {index!r}: only http, https and file URLs are supported")
    if not url.endswith(".json"):
        url = url.rstrip("/") + "/" + INDEX_NAME
    return url


def _open(url: str) -> IO[bytes]:
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        raise ImageError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageError(f"cannot fetch {url}: {reason}") from None


def fetch_index(url: str) -> list[dict[str, Any]]:
    """The entries of a remote index."""
    with _open(url) as response:
        try:
            doc = json.loads(response.read())
        except (ValueError, OSError) as exc:
            raise ImageError(f"{url}: not a valid index ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or not isinstance(
        doc.get("images"), list
    ):
        raise ImageError(f"{url}: not a {INDEX_FORMAT} index")
    return [e for e in doc["images"] if isinstance(e, dict)]


def _version_key(version: str) -> tuple[tuple[int, object], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", version))


def choose(entries: list[dict[str, Any]], ref: str, url: str) -> dict[str, Any]:
    """The entry ``ref`` names: ``NAME``, ``NAME:VERSION`` or an image file stem."""
    exact = [e for e in entries if str(e.get("url", "")).removesuffix(".fata") == ref]
    if exact:
        return exact[0]
    name, _, version = ref.partition(":")
    found = [e for e in entries
             if e.get("name") == name and (not version or e.get("version") == version)]
    if not found:
        available = sorted({f"{e.get('name')}:{e.get('version')}" for e in entries})
        raise ImageError(f"{url} has no image {ref} (it has: {', '.join(available) or 'none'})")
    newest = max(_version_key(str(e.get("version", ""))) for e in found)
    found = [e for e in found if _version_key(str(e.get("version", ""))) == newest]
    if len(found) > 1:
        socket = [e for e in found if e.get("keys", {}).get("net") == "socket"]
        if len(socket) == 1:
            return socket[0]  # the default stack, as for `fata build`
        names = ", ".join(sorted(str(e.get("url", "")).removesuffix(".fata") for e in found))
        raise ImageError(f"{ref} is ambiguous in {url}: name one of {names}")
    return found[0]


class _Progress:
    """A one-line progress bar on stderr (only when it is a terminal, or when asked)."""

    def __init__(self, label: str, total: int, stream: IO[str] | None = None) -> None:
        self.label, self.total = label, max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = stream is not None or self.stream.isatty()
        self.done = 0
        self._last = -1

    def update(self, n: int) -> None:
        self.done += n
        percent = min(100, self.done * 100 // self.total)
        if self.enabled and percent != self._last:
            self._last = percent
            bar = "#" * (percent * 30 // 100)
            self.stream.write(f"\r{self.label} [{bar:<30}] {percent:3d}% "
                              f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _entry_field(entry: dict[str, Any], field: str, kind: type, url: str) -> Any:
    value = entry.get(field)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ImageError(f"{url}: index entry {entry.get('url')!r} has no valid {field}")
    return value


def pull(
    ref: str,
    index_url: str,
    out_dir: Path | None = None,
    trust: list[Path] | tuple[Path, ...] = (),
    progress: IO[str] | None = None,
) -> Path:
    """Download the image ``ref`` from the index at ``index_url`` into ``out_dir``; verify it.
    Returns the image's path; on any failure nothing is left behind."""
    url = index_location(index_url)
    entry = choose(fetch_index(url), ref, url)
    rel = _entry_field(entry, "url", str, url)
    size = _entry_field(entry, "size", int, url)
    digest = _entry_field(entry, "sha256", str, url).lower()
    if not _SAFE_FILE.match(rel):
        raise ImageError(f"{url}: index entry URL {rel!r} is not a plain image file name")
    image_url = urllib.parse.urljoin(url, urllib.parse.quote(rel))
    out = Path(out_dir) if out_dir is not None else repo_root_for(Path.cwd()) / "images" / "dist"
    out.mkdir(parents=True, exist_ok=True)
    destination = out / rel
    tmp = out / f".{rel}.{os.getpid()}.part"
    keys = trusted_keys(list(trust))
    try:
        sha = hashlib.sha256()
        received = 0
        bar = _Progress(f"pulling {rel}", size, progress)
        with _open(image_url) as response, open(tmp, "wb") as handle:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > size:
                    raise ImageError(f"{image_url}: larger than the {size} bytes the index says")
                sha.update(chunk)
                handle.write(chunk)
                bar.update(len(chunk))
        bar.close()
        if received != size:
            raise ImageError(f"{image_url}: got {received} bytes, the index says {size}")
        if sha.hexdigest() != digest:
            raise ImageError(f"{image_url}: sha256 {sha.hexdigest()} does not match the index "
                             f"entry ({digest}); refusing it")
        verified = verify_image(tmp, keys)
        if verified.manifest["key_id"] != entry.get("key_id"):
            raise ImageError(f"{image_url}: signed by key {verified.manifest['key_id']}, "
                             f"the index says {entry.get('key_id')}")
        with ImageArchive(tmp) as archive:
            _, signature = parse_signature(archive.read(SIGNATURE_NAME), str(image_url))
        if base64.b64encode(signature).decode("ascii") != entry.get("signature"):
            raise ImageError(f"{image_url}: its signature differs from the index entry's")
        os.replace(tmp, destination)
    except ImageError as exc:
        raise ImageError(str(exc).replace(str(tmp), image_url)) from None
    except OSError as exc:
        raise ImageError(f"cannot write {destination}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return destination
