"""Extra response headers chosen by path: ``Cache-Control`` per path pattern, and the usual
security headers.

A site's caching rules are a property of its paths (hashed assets for a year, HTML never
stale), so they are given as ``GLOB=VALUE`` rules, the first matching rule winning
(``fnmatch`` patterns against the URL path: ``/assets/*=public, max-age=31536000,
immutable``).  The headers go into the memoised responses at load, so they cost nothing
per request, and into 304s too (RFC 9110 section 15.4.5 requires ``Cache-Control`` there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

Headers = list[tuple[bytes, bytes]]

SECURITY_HEADERS: Headers = [
    (b"X-Content-Type-Options", b"nosniff"),
    (b"X-Frame-Options", b"SAMEORIGIN"),
    (b"Referrer-Policy", b"strict-origin-when-cross-origin"),
]
"""What ``--security-headers`` adds to every answer about a file (a HTTP-only site has no
use for HSTS: browsers ignore it over plain HTTP, RFC 6797 section 8.1)."""

_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")


class PolicyError(ValueError):
    """A rule that is not ``GLOB=VALUE`` with a path glob and a header value."""


@dataclass(frozen=True)
class HeaderPolicy:
    """``cache_control`` rules, first match wins; ``security`` adds :data:`SECURITY_HEADERS`."""

    cache_control: tuple[tuple[str, bytes], ...] = ()
    security: bool = False

    @classmethod
    def parse(cls, rules: Sequence[str], security: bool = False) -> HeaderPolicy:
        """From ``--cache-control GLOB=VALUE`` options; PolicyError names a bad one."""
        parsed = []
        for rule in rules:
            glob, sep, value = rule.partition("=")
            value = value.strip()
            if not sep or not glob.startswith("/") or not _VALUE.match(value):
                raise PolicyError(f"--cache-control {rule!r}: expected /GLOB=VALUE, e.g. "
                                  f"'/assets/*=public, max-age=31536000'")
            parsed.append((glob, value.encode("ascii")))
        return cls(tuple(parsed), security)

    def headers_for(self, path: str) -> Headers:
        """The extra headers of an answer about the file at URL path ``path``."""
        out: Headers = []
        for glob, value in self.cache_control:
            if fnmatchcase(path, glob):
                out.append((b"Cache-Control", value))
                break
        if self.security:
            out.extend(SECURITY_HEADERS)
        return out
