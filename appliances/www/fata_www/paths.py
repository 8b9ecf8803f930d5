"""Request targets to site paths: percent-decoding and normalisation that never leave the site.

:func:`resolve` turns the raw request-target of a request line into the normalised URL path
the site is keyed by (``/docs/index.html``, ``/docs/``) or a :class:`PathError` carrying the
status to answer.  The rules, strictest first, so that no spelling reaches a file that the
plain spelling would not:

- only origin-form (``/...``) and absolute-form (``http://host/...``) targets; a fragment
  (``#``) or anything else is 400;
- the query is dropped (a static site has no use for it);
- ``%XX`` must be two hex digits (400); a decoded NUL or control character is 400;
- an encoded ``/`` (``%2F``) or ``\\`` (``%5C``) is 404: it would name a file whose name
  holds a slash, which no site has, and decoding it into a separator would let a path
  slip past checks made on the encoded form;
- the decoded bytes must be UTF-8 (404: no such name);
- ``.`` segments and empty segments (``//``) are dropped; ``..`` removes the segment
  before it, and a ``..`` that would climb above the site's root is 400;
- a segment longer than 255 bytes (no file system has such names) or more than 64 segments
  is 404.

Percent-decoding happens exactly once: ``%252e%252e`` is the segment ``%2e%2e``, a name.
"""

from __future__ import annotations

import re

MAX_SEGMENT = 255
MAX_SEGMENTS = 64
_HEX = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


class PathError(Exception):
    """A target that names nothing the site could serve; ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def resolve(target: bytes) -> str:
    """The normalised site path for a raw request-target (``PathError`` if none); it ends
    in ``/`` when the target named a directory (ended in ``/``, ``/.`` or ``/..``)."""
    m = _ABSOLUTE.match(target)
    if m is not None:
        target = target[m.end():] or b"/"
    if not target.startswith(b"/"):
        raise PathError(400, "not an origin-form target")
    if b"#" in target:
        raise PathError(400, "fragment in target")
    path = target.split(b"?", 1)[0]
    if _BAD_PERCENT.search(path):
        raise PathError(400, "malformed percent-encoding")
    decoded = _HEX.sub(_decode_escape, path)
    if any(c < 0x20 or c == 0x7F for c in decoded):
        raise PathError(400, "control character in path")
    if b"\\" in decoded or _has_encoded_separator(path):
        raise PathError(404, "encoded separator in path")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise PathError(404, "path is not UTF-8") from None
    out: list[str] = []
    segments = text.split("/")[1:]
    for segment in segments:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                raise PathError(400, "path climbs above the site")
            out.pop()
            continue
        if len(segment.encode("utf-8")) > MAX_SEGMENT:
            raise PathError(404, "name too long")
        out.append(segment)
    if len(out) > MAX_SEGMENTS:
        raise PathError(404, "too many path segments")
    directory = not segments or segments[-1] in ("", ".", "..")
    result = "/" + "/".join(out)
    if directory and out:
        result += "/"
    return result


def _decode_escape(m: re.Match[bytes]) -> bytes:
    return bytes((int(m.group(1), 16),))


def _has_encoded_separator(path: bytes) -> bool:
    lowered = path.lower()
    return b"%2f" in lowered or b"%5c" in lowered


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                  b"-._~/!$&'()*+,;=:@")


def encode(path: str) -> bytes:
    """A site path as the request-target a client sends for it (percent-encoded UTF-8):
    the key of the fast path's table and the ``Location`` of a redirect."""
    return b"".join(bytes((c,)) if c in _SAFE else b"%%%02X" % c for c in path.encode("utf-8"))
