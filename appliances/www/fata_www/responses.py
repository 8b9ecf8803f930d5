"""Responses: the memoised bytes for every plain GET and HEAD, and the full answer otherwise.

At load (:class:`Responses`, built once per site) every resource gets its response head as
bytes (status line and headers, all but ``Date``), keyed by the request-target a client
sends for it; directories are keyed by their ``/``-ended target too.  The engine's fast
path then answers with ``head + Date + CRLF + body`` and nothing else.

Everything unusual goes through :meth:`Responses.answer`, which applies RFC 9110 in its
order: the target's normalisation (``paths.resolve``), the method (405 with ``Allow``,
``OPTIONS``), the index and the trailing-slash redirect, the preconditions (section 13.2.2:
``If-Match``, ``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``), then a
single byte ``Range`` (206, or 416 with ``Content-Range``) guarded by ``If-Range``.  Several
ranges in one request get the whole representation (200), which RFC 9110 section 14.2
allows, rather than a multipart body.

Compression is done once too: a compressible resource of at least :data:`GZIP_MIN` bytes
gets a brotli and a gzip variant, each kept only if it saves a tenth or more.  A variant
made at build time is taken from the site itself: ``X.br`` and ``X.gz`` next to ``X`` (the
default site's build hook writes them, as nginx's ``gzip_static`` reads them); otherwise it
is made at load (gzip level 9 without a timestamp, brotli quality 11, or 5 for large
files), so the same bytes always give the same variant.  Such a resource has several
representations, each with its own strong ETag (the identity's with ``-br`` or ``-gz``);
which one a request gets follows its ``Accept-Encoding`` q-values (:func:`choose_encoding`:
the highest q-value wins, brotli before gzip on a tie, identity when it is preferred or
nothing else is acceptable), every answer about it says ``Vary: Accept-Encoding``, and
preconditions and ranges apply to the representation chosen (RFC 9110 sections 8.8.3 and
14).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from typing import Protocol

import brotli

from fata_www.dates import http_date, parse_http_date
from fata_www.paths import PathError, encode, resolve
from fata_www.policy import HeaderPolicy
from fata_www.site import Resource, Site

SERVER = b"fata-www"
ALLOW = b"GET, HEAD, OPTIONS"
INDEX = "index.html"
REASONS = {
    200: "OK", 204: "No Content", 206: "Partial Content", 301: "Moved Permanently",
    304: "Not Modified", 308: "Permanent Redirect", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 412: "Precondition Failed",
    413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
NOT_FOUND_PAGE = "/404.html"
GZIP_MIN = 256  # below this the gzip header and the extra round of decoding are not worth it
BROTLI_BEST_MAX = 1 << 18  # larger bodies get brotli quality 5 at load (11 is ~1 MB/s)
CODINGS = (b"br", b"gzip")  # the variants made, in order of preference on equal q-values
SUFFIXES = {b"br": ".br", b"gzip": ".gz"}
TAGS = {b"br": b'-br"', b"gzip": b'-gz"'}
COMPRESSIBLE = ("text/", "application/json", "application/xml", "application/manifest+json",
                "image/svg+xml", "application/wasm", "font/ttf", "font/otf")
_CODING = re.compile(rb"^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:;\s*q\s*=\s*([0-9.]{1,5})\s*)?$")

Headers = list[tuple[bytes, bytes]]


def head_bytes(status: int, headers: Headers) -> bytes:
    """A status line and header lines, each ending in CRLF (the blank line not included)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join(lines)


@dataclass(frozen=True, slots=True)
class Reply:
    """A response before framing: the engine adds ``Date`` and writes it (through h11 on the
    slow path).  ``body`` is not sent for HEAD; ``close`` ends the connection after it."""

    status: int
    headers: Headers
    body: bytes = b""
    close: bool = False


@dataclass(frozen=True, slots=True)
class Variant:
    """One representation of a resource: its bytes, its strong ETag and its content coding
    (None for identity)."""

    body: bytes
    etag: bytes
    encoding: bytes | None = None


def identity(resource: Resource) -> Variant:
    """The resource's bytes as they are."""
    return Variant(resource.body, resource.etag.encode("ascii"))


def compress(coding: bytes, body: bytes) -> bytes:
    """``body`` in content coding ``coding`` (``br`` or ``gzip``), deterministically."""
    if coding == b"gzip":
        return gzip.compress(body, compresslevel=9, mtime=0)
    return brotli.compress(body, quality=11 if len(body) <= BROTLI_BEST_MAX else 5)


def variants_of(resource: Resource, site: Site | None = None) -> dict[bytes, Variant]:
    """The compressed variants of a compressible resource that save at least a tenth, by
    coding: the site's ``X.br``/``X.gz`` when it has them (made at build time), else made
    now."""
    if len(resource.body) < GZIP_MIN or not resource.content_type.startswith(COMPRESSIBLE):
        return {}
    out = {}
    for coding in CODINGS:
        made = site.get(resource.path + SUFFIXES[coding]) if site is not None else None
        packed = made.body if made is not None else compress(coding, resource.body)
        if len(packed) <= len(resource.body) * 0.9:
            out[coding] = Variant(packed, resource.etag[:-1].encode("ascii") + TAGS[coding],
                                  coding)
    return out


def gzip_variant(resource: Resource) -> Variant | None:
    """The gzip variant of a compressible resource, if it saves at least a tenth."""
    return variants_of(resource).get(b"gzip")


def choose_encoding(accept_encoding: bytes, available: tuple[bytes, ...] = CODINGS
                    ) -> bytes | None:
    """The coding of ``available`` that ``Accept-Encoding`` prefers (RFC 9110 section
    12.5.3), or None for identity: the highest q-value above zero and not below identity's
    wins (``x-gzip`` is gzip; ``*`` stands for codings not named), earlier in ``available``
    on a tie; identity not named counts as the least preferred acceptable coding (as nginx
    and Apache take it).  An unparsable header asks for identity."""
    q: dict[bytes, float] = {}
    for item in accept_encoding.split(b","):
        if not item.strip():
            continue
        m = _CODING.match(item)
        if m is None:
            return None
        try:
            value = float(m.group(2)) if m.group(2) else 1.0
        except ValueError:
            return None
        if not 0.0 <= value <= 1.0:
            return None
        coding = m.group(1).lower()
        q[b"gzip" if coding == b"x-gzip" else coding] = value
    star = q.get(b"*")
    q_identity = q.get(b"identity", 0.001 if star is None else star)
    best, best_q = None, 0.0
    for coding in available:
        value = q.get(coding, star if star is not None else 0.0)
        if value > best_q and value >= q_identity:
            best, best_q = coding, value
    return best


def wants_gzip(accept_encoding: bytes) -> bool:
    """Whether ``Accept-Encoding`` prefers gzip to identity (:func:`choose_encoding` with
    gzip the only coding on offer)."""
    return choose_encoding(accept_encoding, (b"gzip",)) == b"gzip"


def resource_headers(resource: Resource, variant: Variant | None = None,
                     vary: bool = False, extra: Headers = ()) -> Headers:
    """The headers of a 200 for ``resource`` as ``variant`` (identity by default)
    (``Date`` excepted); ``vary`` when it has more than one representation; ``extra``
    from the header policy."""
    variant = variant or identity(resource)
    headers = [
        (b"Server", SERVER),
        (b"Content-Type", resource.content_type.encode("ascii")),
        (b"Content-Length", str(len(variant.body)).encode("ascii")),
        (b"ETag", variant.etag),
        (b"Last-Modified", http_date(resource.last_modified)),
        (b"Accept-Ranges", b"bytes"),
    ]
    if variant.encoding is not None:
        headers.append((b"Content-Encoding", variant.encoding))
    if vary:
        headers.append((b"Vary", b"Accept-Encoding"))
    return headers + list(extra)


def validator_headers(resource: Resource, variant: Variant | None = None,
                      vary: bool = False, extra: Headers = ()) -> Headers:
    """What a 304 carries (RFC 9110 section 15.4.5): the validators and the policy's
    headers (``Cache-Control`` must be there), no body headers."""
    variant = variant or identity(resource)
    headers = [(b"Server", SERVER), (b"ETag", variant.etag),
               (b"Last-Modified", http_date(resource.last_modified))]
    if vary:
        headers.append((b"Vary", b"Accept-Encoding"))
    return headers + list(extra)


def error_reply(status: int, close: bool = False, extra: Headers | None = None,
                body: bytes | None = None, content_type: bytes = b"text/plain; charset=utf-8"
                ) -> Reply:
    """A short answer with a text body naming the status."""
    if body is None:
        body = f"{status} {REASONS.get(status, 'Error')}\n".encode()
    headers: Headers = [(b"Server", SERVER), (b"Content-Type", content_type),
                        (b"Content-Length", str(len(body)).encode("ascii"))]
    if close:
        headers.append((b"Connection", b"close"))
    return Reply(status, headers + list(extra or ()), body, close)


def closing_bytes(status: int, date_line: bytes = b"") -> bytes:
    """A whole error response that ends the connection, for requests h11 cannot frame
    (malformed, too large, too slow); ``date_line`` is the ``Date`` header line."""
    reply = error_reply(status, close=True)
    return head_bytes(reply.status, reply.headers) + date_line + b"\r\n" + reply.body


@dataclass(frozen=True, slots=True)
class Prepared:
    """The memoised 200 for one target: ``head`` lacks only ``Date`` and the blank line;
    ``codings`` names its compressed variants (in :data:`CODINGS` order) and ``encoded``
    holds each one's head and body."""

    head: bytes
    body: bytes
    codings: tuple[bytes, ...] = ()
    encoded: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)


class Answers(Protocol):
    """What the HTTP/1.1 engine asks of a listener's answers: the prepared 200s by
    request-target, and the answer to any other request (:class:`Responses` for the
    site, ``tlssetup.RedirectResponses`` for a plain listener that sends all to HTTPS)."""

    fast: dict[bytes, Prepared]

    def answer(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> Reply:
        """The answer to a complete request (headers by lowercase name)."""
        ...


def _etags(value: bytes) -> list[bytes] | None:
    """The entity tags of an ``If-Match``/``If-None-Match`` list; None for ``*``."""
    if value.strip() == b"*":
        return None
    return [tag.strip() for tag in value.split(b",") if tag.strip()]


def _weak_match(tags: list[bytes] | None, etag: bytes) -> bool:
    if tags is None:
        return True
    return any(t.removeprefix(b"W/") == etag for t in tags)


def _strong_match(tags: list[bytes] | None, etag: bytes) -> bool:
    if tags is None:
        return True
    return etag in tags  # a weak tag (W/"...") never equals our strong one


def parse_range(value: bytes, size: int) -> tuple[int, int] | bool | None:
    """A single byte range of ``Range: bytes=...`` as ``(first, last)`` inclusive; ``None``
    when the header is to be ignored (not bytes, several ranges, invalid syntax); ``False``
    when it is valid but unsatisfiable (416)."""
    unit, sep, spec = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return None
    spec = spec.strip()
    if b"," in spec:
        return None
    first_text, dash, last_text = spec.partition(b"-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or (first_text and not first_text.isdigit()) or (
            last_text and not last_text.isdigit()):
        return None
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return False
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


class Responses:
    """Every answer the site gives, the fast ones prepared as bytes; a TLS listener has
    its own (``secure``), since its headers differ (HSTS)."""

    def __init__(self, site: Site, policy: HeaderPolicy | None = None,
                 secure: bool = False, like: Responses | None = None) -> None:
        self.site = site
        self.policy = policy or HeaderPolicy()
        self.secure = secure  # answers go over TLS (the policy's HSTS applies)
        # ``like``: the same site's other listener's answers, whose variants are reused
        self.fast: dict[bytes, Prepared] = {}
        self.variants: dict[str, dict[bytes, Variant]] = {}
        for path, resource in site.resources.items():
            packed = (like.variants.get(path, {}) if like is not None
                      else variants_of(resource, site))
            extra = self.policy.headers_for(path, secure)
            if packed:
                self.variants[path] = packed
            vary = bool(packed)
            prepared = Prepared(
                head_bytes(200, resource_headers(resource, vary=vary, extra=extra)),
                resource.body, tuple(packed),
                {coding: (head_bytes(200, resource_headers(resource, v, vary=True, extra=extra)),
                          v.body) for coding, v in packed.items()})
            self.fast[encode(path)] = prepared
            if path.rsplit("/", 1)[-1] == INDEX:
                self.fast[encode(path[: -len(INDEX)])] = prepared
        page = site.get(NOT_FOUND_PAGE)
        if page is not None:
            self.not_found = error_reply(404, body=page.body,
                                         content_type=page.content_type.encode("ascii"))
        else:
            self.not_found = error_reply(404)

    def lookup(self, path: str) -> Resource | str | None:
        """The resource a normalised path names, the ``/``-ended path to redirect a
        directory to, or None."""
        if path.endswith("/"):
            return self.site.get(path + INDEX)
        resource = self.site.get(path)
        if resource is not None:
            return resource
        if path in self.site.directories:
            return path + "/"
        return None

    def answer(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> Reply:
        """The answer to a complete request; ``headers`` by lowercase name (repeated ones
        joined with ``, ``)."""
        if method == b"OPTIONS" and target == b"*":
            return Reply(200, [(b"Server", SERVER), (b"Allow", ALLOW),
                               (b"Content-Length", b"0")])
        try:
            path = resolve(target)
        except PathError as exc:
            return error_reply(exc.status) if exc.status != 404 else self.not_found
        if method not in (b"GET", b"HEAD", b"OPTIONS"):
            return error_reply(405, extra=[(b"Allow", ALLOW)])
        found = self.lookup(path)
        if found is None:
            return self.not_found
        if isinstance(found, str):
            query = target.partition(b"?")[1:]
            location = encode(found) + b"".join(query)
            return error_reply(301, extra=[(b"Location", location)],
                               body=b"301 Moved Permanently: " + location + b"\n")
        if method == b"OPTIONS":
            return Reply(200, [(b"Server", SERVER), (b"Allow", ALLOW),
                               (b"Content-Length", b"0")])
        return self._representation(method, found, headers)

    def _representation(self, method: bytes, resource: Resource,
                        headers: dict[bytes, bytes]) -> Reply:
        packed = self.variants.get(resource.path, {})
        vary = bool(packed)
        extra = self.policy.headers_for(resource.path, self.secure)
        variant = identity(resource)
        if packed:
            coding = choose_encoding(headers.get(b"accept-encoding", b""), tuple(packed))
            if coding is not None:
                variant = packed[coding]
        etag = variant.etag
        if_match = headers.get(b"if-match")
        if if_match is not None:
            if not _strong_match(_etags(if_match), etag):
                return error_reply(412)
        else:
            since = headers.get(b"if-unmodified-since")
            date = parse_http_date(since) if since is not None else None
            if date is not None and resource.last_modified > date:
                return error_reply(412)
        if_none = headers.get(b"if-none-match")
        if if_none is not None:
            if _weak_match(_etags(if_none), etag):
                return Reply(304, validator_headers(resource, variant, vary, extra))
        else:
            since = headers.get(b"if-modified-since")
            date = parse_http_date(since) if since is not None else None
            if date is not None and resource.last_modified <= date:
                return Reply(304, validator_headers(resource, variant, vary, extra))
        full = resource_headers(resource, variant, vary, extra)
        range_value = headers.get(b"range")
        if method == b"GET" and range_value is not None and self._if_range(
                headers, resource, etag):
            size = len(variant.body)
            chosen = parse_range(range_value, size)
            if chosen is False:
                unsatisfiable = [(b"Content-Range", b"bytes */%d" % size)]
                if vary:
                    unsatisfiable.append((b"Vary", b"Accept-Encoding"))
                return error_reply(416, extra=unsatisfiable)
            if chosen is not None:
                first, last = chosen
                part = variant.body[first : last + 1]
                out = [(n, v) for n, v in full if n != b"Content-Length"]
                out += [(b"Content-Length", str(len(part)).encode("ascii")),
                        (b"Content-Range", b"bytes %d-%d/%d" % (first, last, size))]
                return Reply(206, out, part)
        return Reply(200, full, variant.body)

    @staticmethod
    def _if_range(headers: dict[bytes, bytes], resource: Resource, etag: bytes) -> bool:
        """Whether a ``Range`` applies: no ``If-Range``, or one naming the chosen
        representation (its strong ``etag``, or exactly its ``Last-Modified``)."""
        value = headers.get(b"if-range")
        if value is None:
            return True
        value = value.strip()
        if value.startswith((b'"', b"W/")):
            return value == etag
        date = parse_http_date(value)
        return date is not None and date == resource.last_modified
