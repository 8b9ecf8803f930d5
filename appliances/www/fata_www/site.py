"""A site: the files of a KV store as an immutable map from URL path to :class:`Resource`.

Loading happens only at start and on reload (``unikernel.py``); the engine sees a finished
:class:`Site` and never touches a device.  A site is built completely or not at all, so a
bad directory never half-loads: :func:`load_site` raises :class:`SiteError` and the caller
keeps serving the previous site.

What a resource carries is what HTTP needs from a file and can be computed once: its bytes,
its ``Content-Type`` (from the file name; text types with ``charset=utf-8``), a strong ETag
from the SHA-256 of the bytes (equal bytes, equal tag, across reloads and restarts), and its
``Last-Modified``.  A KV store has no modification times, so ``Last-Modified`` is the time
the bytes were first seen: the load time, kept across reloads while the bytes are the same
(so a reload does not make every cached copy look stale).

Files whose path has a component starting with ``.`` (``.git``, ``.htaccess``) are not
served: they are the site's housekeeping, not its content.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fata.devices import KV, KeyNotFound

BUILD_EPOCH_KEY = ".build-epoch"
"""Where a baked site's build hook records the build's epoch (hidden, so never served): the
baked files' ``Last-Modified``."""
MAX_FILES = 100_000  # more is a mistake (a home directory given as --site), not a site

# Extension -> media type.  Our own table rather than ``mimetypes``, whose answers depend on
# the host's /etc/mime.types: the same site gets the same headers on every target.
CONTENT_TYPES: dict[str, str] = {
    "html": "text/html", "htm": "text/html", "css": "text/css", "js": "text/javascript",
    "mjs": "text/javascript", "txt": "text/plain", "md": "text/markdown", "csv": "text/csv",
    "xml": "application/xml", "json": "application/json", "map": "application/json",
    "webmanifest": "application/manifest+json", "svg": "image/svg+xml", "png": "image/png",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "avif": "image/avif", "ico": "image/vnd.microsoft.icon", "woff": "font/woff",
    "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf", "pdf": "application/pdf",
    "wasm": "application/wasm", "zip": "application/zip", "gz": "application/gzip",
    "tar": "application/x-tar", "mp4": "video/mp4", "webm": "video/webm",
    "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav",
}
DEFAULT_TYPE = "application/octet-stream"
# Types that are text without being text/*: they get a charset too.
TEXT_TYPES = frozenset({"application/xml", "application/json", "application/manifest+json",
                        "image/svg+xml"})


class SiteError(Exception):
    """The site cannot be loaded (no files, unreadable file, too many files)."""


def content_type(path: str) -> str:
    """The ``Content-Type`` for a file name: by extension, with ``charset=utf-8`` for text."""
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    media = CONTENT_TYPES.get(ext, DEFAULT_TYPE)
    if media.startswith("text/") or media in TEXT_TYPES:
        return f"{media}; charset=utf-8"
    return media


@dataclass(frozen=True, slots=True)
class Resource:
    """One file of the site, with everything HTTP says about it computed once."""

    path: str  # the URL path, "/docs/index.html"
    body: bytes
    content_type: str
    sha256: str  # hex digest of body
    etag: str  # strong entity tag, quotes included
    last_modified: int  # seconds since the epoch (HTTP dates have whole seconds)


@dataclass(frozen=True, slots=True)
class Site:
    """The site being served: path -> resource, and the directories (for 301 and index)."""

    resources: Mapping[str, Resource]
    directories: frozenset[str]  # "/docs" for every directory holding a file, "/" included

    def get(self, path: str) -> Resource | None:
        """The resource at ``path`` (a normalised URL path), or None."""
        return self.resources.get(path)

    @property
    def total_bytes(self) -> int:
        """The bytes of all files."""
        return sum(len(r.body) for r in self.resources.values())


def make_resource(path: str, body: bytes, last_modified: int) -> Resource:
    """A resource for ``body`` served at ``path``."""
    digest = hashlib.sha256(body).hexdigest()
    return Resource(path, body, content_type(path), digest, f'"{digest[:32]}"',
                    int(last_modified))


def build_site(files: Mapping[str, bytes], now: float, previous: Site | None = None) -> Site:
    """A site from ``files`` (relative keys ``docs/index.html`` -> bytes), loaded at ``now``.

    A file whose bytes equal the same path's in ``previous`` keeps its ``Last-Modified``.
    """
    resources: dict[str, Resource] = {}
    directories = {"/"}
    for key, body in files.items():
        parts = key.split("/")
        if any(not p or p.startswith(".") for p in parts):
            continue
        path = "/" + key
        old = previous.resources.get(path) if previous is not None else None
        modified = now
        if old is not None and old.body == body:
            modified = old.last_modified
        resources[path] = make_resource(path, body, int(modified))
        for i in range(1, len(parts)):
            directories.add("/" + "/".join(parts[:i]))
    return Site(MappingProxyType(resources), frozenset(directories))


def read_files(kv: KV, prefix: str = "") -> dict[str, bytes]:
    """Every file of ``kv`` under ``prefix`` (a directory key; ``""`` or ``.`` for all) by
    its key relative to ``prefix``; SiteError if there is none or one cannot be read."""
    if prefix:
        prefix = posixpath.normpath(prefix)
        prefix = "" if prefix == "." else prefix.rstrip("/") + "/"
    try:
        keys = kv.keys(prefix)
    except OSError as exc:
        raise SiteError(f"cannot list {prefix or 'the site'}: {exc}") from None
    if len(keys) > MAX_FILES:
        raise SiteError(f"{prefix or 'the site'}: more than {MAX_FILES} files")
    files: dict[str, bytes] = {}
    for key in keys:
        try:
            files[key[len(prefix):]] = kv.get(key)
        except (KeyNotFound, OSError) as exc:
            raise SiteError(f"cannot read {key}: {exc}") from None
    if not files:
        raise SiteError(f"no files to serve in {prefix or 'the site'}")
    return files


def load_site(kv: KV, prefix: str, now: float, previous: Site | None = None) -> Site:
    """The site in ``kv`` under ``prefix``, loaded at ``now`` (see :func:`build_site`)."""
    site = build_site(read_files(kv, prefix), now, previous)
    if not site.resources:
        raise SiteError(f"no files to serve in {prefix or 'the site'} (only hidden ones)")
    return site
