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
"""What ``--security-headers`` adds to every answer about a file."""

_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")
_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?[0-9]+\"?\s*(?:;|$)", re.IGNORECASE)


class PolicyError(ValueError):
    """A rule that is not ``GLOB=VALUE`` with a path glob and a header value, or an HSTS
    value without ``max-age``."""

    is_user_error = True  # the runtime prints the message, not a traceback


@dataclass(frozen=True)
class HeaderPolicy:
    """``cache_control`` rules, first match wins; ``security`` adds :data:`SECURITY_HEADERS`;
    ``hsts`` is the ``Strict-Transport-Security`` value of answers over TLS (browsers
    ignore it over plain HTTP, RFC 6797 section 8.1, so it is never sent there)."""

    cache_control: tuple[tuple[str, bytes], ...] = ()
    security: bool = False
    hsts: bytes = b""

    @classmethod
    def parse(cls, rules: Sequence[str], security: bool = False, hsts: str = ""
              ) -> HeaderPolicy:
        """From ``--cache-control GLOB=VALUE`` and ``--hsts VALUE`` options; PolicyError
        names a bad one."""
        hsts = hsts.strip()
        if hsts and not (_VALUE.match(hsts) and _MAX_AGE.search(hsts)):
            raise PolicyError(f"--hsts {hsts!r}: expected a Strict-Transport-Security value "
                              f"with max-age, e.g. 'max-age=63072000; includeSubDomains'")
        parsed = []
        for rule in rules:
            glob, sep, value = rule.partition("=")
            value = value.strip()
            if not sep or not glob.startswith("/") or not _VALUE.match(value):
                raise PolicyError(f"--cache-control {rule!r}: expected /GLOB=VALUE, e.g. "
                                  f"'/assets/*=public, max-age=31536000'")
            parsed.append((glob, value.encode("ascii")))
        return cls(tuple(parsed), security, hsts.encode("ascii"))

    def headers_for(self, path: str, secure: bool = False) -> Headers:
        """The extra headers of an answer about the file at URL path ``path``, over TLS
        when ``secure``."""
        out: Headers = []
        for glob, value in self.cache_control:
            if fnmatchcase(path, glob):
                out.append((b"Cache-Control", value))
                break
        if self.security:
            out.extend(SECURITY_HEADERS)
        if secure and self.hsts:
            out.append((b"Strict-Transport-Security", self.hsts))
        return out
