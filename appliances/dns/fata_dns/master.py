"""Master-file reader (RFC 1035 section 5, with RFC 2308 ``$TTL``): zone text to wire records.

Why not ``dns.zone.from_text`` for everything: it builds a dnspython object per record and
runs a character-at-a-time tokenizer, about 100-200 microseconds a record, which puts a
10,000-name zone far beyond the half-second start budget.  This reader handles the
framing of the format itself (comments, parentheses, ``$ORIGIN``/``$TTL``/``$INCLUDE``,
blank and ``@`` owners, relative names, TTL and class in either order) and converts the
rdata of the plain, common types (A, AAAA, NS, CNAME, PTR, DNAME, MX) straight to wire.  Every
other type, and any rdata with quotes or escapes, is parsed by dnspython's rdata parsers,
which know all the presentation formats (TXT, SRV, CAA, DS, DNSKEY, generic ``\\#`` ...).
Tests check that both paths agree with ``dns.zone.from_text`` on the same text.

Start-up time is spent here, once per record, so the common line (``owner [ttl] [class]
type rdata`` with no parentheses, quotes or escapes, of one of those types) has a fast
path: one ``split()``, names built from a cache of their suffixes, the record a tuple.
Any line it does not take as it stands goes through the general path, which is the
reference: the tests compare the two on generated zones.

Every error is a :class:`~fata_dns.errors.ZoneError` naming the file and line.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from fata_dns import names
from fata_dns.errors import ZoneError
from fata_dns.names import MAX_LABEL
from fata_dns.records import AAAA, CNAME, DNAME, MX, NS, PTR, SOA, A, soa_minimum

MAX_TTL = 2**31 - 1  # RFC 2181 section 8
MAX_INCLUDE_DEPTH = 8
_CLASSES = {"IN", "CH", "HS", "CS", "NONE", "ANY"}
_META_TYPES = frozenset({41, 249, 250, 251, 252, 253, 254, 255})
# The common mnemonics, so that a zone of plain records loads without importing dnspython
# (its import alone costs a good part of the start-up budget); the rest ask dnspython.
_type_cache: dict[str, int] = {
    name: number for number, name in enumerate(
        ["", "A", "NS", "MD", "MF", "CNAME", "SOA", "MB", "MG", "MR", "NULL", "WKS", "PTR",
         "HINFO", "MINFO", "MX", "TXT"]) if name
}
_type_cache.update({"AAAA": 28, "SRV": 33, "NAPTR": 35, "DNAME": 39, "DS": 43, "SSHFP": 44,
                    "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "TLSA": 52, "SVCB": 64, "HTTPS": 65,
                    "CAA": 257})


Record = tuple[bytes, int, int, bytes, str, int]
"""One resource record as read: (owner, type, TTL, rdata, file, line).

The owner is lowercase wire, the rdata uncompressed wire.  A plain tuple, not a class: a
large zone makes one per record, and start-up time is spent per record.
"""


def _rtype(token: str) -> int | None:
    """The type number of a mnemonic or ``TYPEnnn``, or None if ``token`` is not a type."""
    value = _type_cache.get(token)
    if value is None:
        value = _type_cache.get(token.upper())
    if value is None:
        import dns.rdatatype

        try:
            value = int(dns.rdatatype.from_text(token.upper()))
        except (dns.rdatatype.UnknownRdatatype, ValueError):
            return None
        _type_cache[token] = value
    return value


def _scan(line: str, depth: int) -> tuple[str, int]:
    """Strip the comment and the parentheses from one physical line.

    Returns the content (parentheses replaced by spaces) and the parenthesis depth after it.
    """
    out = []
    quoted = False
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            out.append(line[i : i + 2])
            i += 2
            continue
        if quoted:
            if c == '"':
                quoted = False
            out.append(c)
        elif c == '"':
            quoted = True
            out.append(c)
        elif c == ";":
            break
        elif c == "(":
            depth += 1
            out.append(" ")
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("')' without '('")
            out.append(" ")
        else:
            out.append(c)
        i += 1
    if quoted:
        raise ValueError("unterminated quoted string")
    return "".join(out), depth


def _parse_ttl(token: str) -> int:
    if token.isdigit():
        value = int(token)
    else:
        import dns.exception
        import dns.ttl

        try:
            value = dns.ttl.from_text(token)
        except dns.exception.DNSException:
            raise ValueError(f"bad TTL {token!r}") from None
    if value > MAX_TTL:
        raise ValueError(f"TTL {token} exceeds 2^31-1")
    return value


class _Reader:
    def __init__(self, read_text: Callable[[str], str], fast: bool = True) -> None:
        self.read_text = read_text
        self.fast = fast
        self.records: list[Record] = []
        self.first_origin: bytes | None = None
        # $TTL and the last explicit TTL carry into $INCLUDEd files, as in BIND and dnspython.
        self.default_ttl: int | None = None
        self.last_ttl: int | None = None
        # Per origin: the text after a name's first dot to its wire form; see _name.
        self._suffixes: dict[bytes | None, dict[str, bytes]] = {}
        self._ttls: dict[str, int] = {}  # TTL text to value: int() is slow, TTLs repeat

    def read(self, path: str, text: str, origin: bytes | None, depth: int) -> None:
        """Read one file's records into ``self.records``.

        A physical line with no parentheses, quotes or escapes, holding a record of a
        common type, takes the fast path (:meth:`_plain`): one ``split()`` and the rdata
        converted in place.  Everything else, and any line the fast path does not accept
        as it stands (directives, errors, other types), goes to :meth:`_general`, which
        reads the full syntax and reports faults, so both paths give the same records.
        """
        lines = text.split("\n")
        total = len(lines)
        # Most files have no special character at all; then no line needs the check.
        plain_file = not ('"' in text or "\\" in text or "(" in text or ")" in text)
        fast = self.fast
        last_owner: bytes | None = None
        suffixes = self._suffixes.setdefault(origin, {})
        i = 0
        while i < total:
            raw = lines[i]
            lineno = i = i + 1
            if plain_file or not ('"' in raw or "\\" in raw or "(" in raw or ")" in raw):
                # A "\r" left at the end (CRLF text) is whitespace to split() and strip().
                if ";" in raw:
                    raw = raw.split(";", 1)[0]
                fields = raw.split()
                if not fields:
                    continue
                if fast:
                    owner = self._plain(raw, fields, origin, last_owner, suffixes, path, lineno)
                    if owner is not None:
                        last_owner = owner
                        continue
                content, special = raw, False
            else:
                try:
                    content, depth_after = _scan(raw.removesuffix("\r"), 0)
                    parts = [content]
                    while depth_after > 0:
                        if i >= total:
                            raise ValueError("'(' without ')' before the end of the file")
                        content, depth_after = _scan(lines[i].removesuffix("\r"), depth_after)
                        i += 1
                        parts.append(content)
                except ValueError as exc:
                    raise ZoneError(str(exc), path, lineno) from None
                content = " ".join(parts)
                if not content.strip():
                    continue
                special = True
            try:
                new_origin, last_owner = self._general(path, lineno, content, special, origin,
                                                       last_owner, depth)
            except ZoneError:
                raise
            except (ValueError, names.BadName) as exc:
                raise ZoneError(str(exc) or type(exc).__name__, path, lineno) from None
            if new_origin is not origin:
                origin = new_origin
                suffixes = self._suffixes.setdefault(origin, {})

    def _plain(self, raw: str, fields: list[str], origin: bytes | None,
               last_owner: bytes | None, suffixes: dict[str, bytes], path: str,
               lineno: int) -> bytes | None:
        """The fast path: append the record of a plain line and return its owner, or
        return None (nothing appended) when the line needs :meth:`_general`."""
        try:
            if raw[0] in " \t":
                if last_owner is None:
                    return None
                owner = last_owner
                k = 0
            else:
                head = fields[0]
                if head[0] == "$":
                    return None
                owner = _name(head, origin, suffixes).lower()
                k = 1
            ttl: int | None = None
            token = fields[k]
            rtype = _type_cache.get(token)
            if rtype is None:  # a TTL or the class first, or both in either order
                # (no mnemonic in the cache is a class or starts with a digit)
                ttls = self._ttls
                ttl = ttls.get(token)
                if ttl is None and token.isdigit():
                    ttl = ttls[token] = int(token)
                if ttl is not None:
                    k += 1
                    token = fields[k]
                    if token == "IN" or token.upper() == "IN":
                        k += 1
                        token = fields[k]
                elif token == "IN" or token.upper() == "IN":
                    k += 1
                    token = fields[k]
                    ttl = ttls.get(token)
                    if ttl is None and token.isdigit():
                        ttl = ttls[token] = int(token)
                    if ttl is not None:
                        k += 1
                        token = fields[k]
                if ttl is not None and ttl > MAX_TTL:
                    return None
                rtype = _type_cache.get(token)
                if rtype is None:
                    return None
            k += 1
            n = len(fields) - k
            if rtype == A:
                if n != 1:
                    return None
                rdata = _inet_pton(_AF_INET, fields[k])
            elif rtype == AAAA:
                if n != 1:
                    return None
                rdata = _inet_pton(_AF_INET6, fields[k])
            elif rtype in _NAME_TYPES:
                if n != 1:
                    return None
                rdata = _name(fields[k], origin, suffixes)
            elif rtype == MX:
                pref = fields[k]
                if n != 2 or not pref.isdigit() or int(pref) > 65535:
                    return None
                rdata = int(pref).to_bytes(2, "big") + _name(fields[k + 1], origin, suffixes)
            elif rtype == SOA:
                numbers = fields[k + 2 :]
                if n != 7 or not all(p.isdigit() and int(p) < 2**32 for p in numbers):
                    return None
                rdata = (_name(fields[k], origin, suffixes)
                         + _name(fields[k + 1], origin, suffixes)
                         + b"".join(int(p).to_bytes(4, "big") for p in numbers))
            else:
                return None
        except (ValueError, IndexError, OSError):  # names.BadName is a ValueError
            return None  # the general path reports it, with its own message
        ttl = self._ttl_for(ttl, rtype, rdata)
        if ttl is None:
            return None
        self.records.append((owner, rtype, ttl, rdata, path, lineno))
        return owner

    def _general(self, path: str, lineno: int, content: str, special: bool,
                 origin: bytes | None, last_owner: bytes | None,
                 depth: int) -> tuple[bytes | None, bytes | None]:
        """One logical line in the full syntax; returns the (origin, last owner) after it."""
        if content[0] in " \t":
            if last_owner is None:
                raise ValueError("record with no owner name and no previous owner")
            owner = last_owner
            rest = content.strip()
        else:
            head, rest = _split1(content)
            if head[0] == "$":
                directive = head.upper()
                args = rest.split()
                if directive == "$ORIGIN":
                    if len(args) != 1:
                        raise ValueError("$ORIGIN takes one name")
                    origin = names.from_text(args[0], origin)
                    if self.first_origin is None:
                        self.first_origin = origin
                elif directive == "$TTL":
                    if len(args) != 1:
                        raise ValueError("$TTL takes one value")
                    self.default_ttl = _parse_ttl(args[0])
                elif directive == "$INCLUDE":
                    if not 1 <= len(args) <= 2:
                        raise ValueError("$INCLUDE takes a file and an optional origin")
                    self._include(path, args, origin, depth)
                else:
                    raise ValueError(f"unsupported directive {head}")
                return origin, last_owner
            owner = names.from_text(head, origin).lower()
            last_owner = owner
        ttl: int | None = None
        while True:
            token, after = _split1(rest)
            if not token:
                raise ValueError("record without a type")
            if token[0].isdigit():
                if ttl is not None:
                    raise ValueError("two TTLs in one record")
                ttl = _parse_ttl(token)
            elif token.upper() in _CLASSES:
                if token.upper() != "IN":
                    raise ValueError(f"class {token} not served (only IN)")
            else:
                break
            rest = after
        rtype = _rtype(token)
        if rtype is None:
            raise ValueError(f"unknown record type {token!r}")
        if rtype in _META_TYPES:
            raise ValueError(f"{token} is a meta-type, not data")
        rdtext = after.strip()
        if not rdtext:
            raise ValueError(f"{token} record without data")
        if not special and rtype in _FAST:
            rdata = _FAST[rtype](rdtext, origin)
        else:
            rdata = _slow_rdata(rtype, rdtext, origin)
        ttl = self._ttl_for(ttl, rtype, rdata)
        if ttl is None:
            raise ValueError("no TTL given and no $TTL in effect")
        self.records.append((owner, rtype, ttl, rdata, path, lineno))
        return origin, last_owner

    def _ttl_for(self, ttl: int | None, rtype: int, rdata: bytes) -> int | None:
        """A record's TTL: its own (which later records without one inherit), else ``$TTL``,
        else the previous record's, else an SOA's MINIMUM; ``None`` when nothing applies."""
        if ttl is not None:
            self.last_ttl = ttl
            return ttl
        if self.default_ttl is not None:
            return self.default_ttl
        if self.last_ttl is not None:
            return self.last_ttl
        if rtype == SOA:
            return soa_minimum(rdata)
        return None

    def _include(self, path: str, args: list[str], origin: bytes | None, depth: int) -> None:
        if depth >= MAX_INCLUDE_DEPTH:
            raise ValueError("$INCLUDE nested too deeply")
        target = args[0]
        if not os.path.isabs(target):
            target = os.path.join(os.path.dirname(path), target)
        new_origin = names.from_text(args[1], origin) if len(args) == 2 else origin
        try:
            text = self.read_text(target)
        except (OSError, KeyError) as exc:
            raise ValueError(f"$INCLUDE {args[0]}: cannot read: {exc}") from None
        self.read(target, text, new_origin, depth + 1)


_LENGTH = [bytes((n,)) for n in range(MAX_LABEL + 1)]
_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_NAME_TYPES = frozenset({NS, CNAME, PTR, DNAME})


def _name(text: str, origin: bytes | None, suffixes: dict[str, bytes]) -> bytes:
    """``names.from_text(text, origin)``, converting only the first label.

    Names in a zone mostly share their tail (the origin, or an absolute suffix written
    out on every line), so only the first label is converted.  A single relative label
    goes in front of ``origin``; otherwise the text after the first dot is looked up in
    ``suffixes`` (one dict per origin), which a full conversion fills.  A name that is
    not plain ASCII, or whose first label is empty or too long, or that would be too
    long, takes the full conversion, which raises the right error.
    """
    head, dot, tail = text.partition(".")
    n = len(head)
    suffix = suffixes.get(tail) if dot else origin
    if suffix is not None and 0 < n <= MAX_LABEL and "\\" not in text and text != "@":
        label = head.encode()
        if len(label) == n:  # else not ASCII: IDNA, by the full conversion
            wire = _LENGTH[n] + label + suffix
            if len(wire) <= names.MAX_NAME:
                return wire
    wire = names.from_text(text, origin)
    if dot and 0 < n <= MAX_LABEL and text.isascii() and "\\" not in text:
        suffixes[tail] = wire[n + 1 :]
    return wire


def _split1(text: str) -> tuple[str, str]:
    """The first whitespace-separated field and the rest (stripped)."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _one(text: str) -> str:
    parts = text.split()
    if len(parts) != 1:
        raise ValueError(f"expected one field, got {text!r}")
    return parts[0]


def _rd_a(text: str, origin: bytes | None) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, _one(text))
    except OSError:
        raise ValueError(f"bad IPv4 address {text!r}") from None


def _rd_aaaa(text: str, origin: bytes | None) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6, _one(text))
    except OSError:
        raise ValueError(f"bad IPv6 address {text!r}") from None


def _rd_name(text: str, origin: bytes | None) -> bytes:
    return names.from_text(_one(text), origin)


def _rd_mx(text: str, origin: bytes | None) -> bytes:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) > 65535:
        raise ValueError(f"bad MX data {text!r}")
    return int(parts[0]).to_bytes(2, "big") + names.from_text(parts[1], origin)


def _rd_soa(text: str, origin: bytes | None) -> bytes:
    parts = text.split()
    if len(parts) != 7 or not all(p.isdigit() and int(p) < 2**32 for p in parts[2:]):
        return _slow_rdata(SOA, text, origin)  # TTL-style units (1h) or an error to report
    return (names.from_text(parts[0], origin) + names.from_text(parts[1], origin)
            + b"".join(int(p).to_bytes(4, "big") for p in parts[2:]))


_FAST: dict[int, Callable[[str, bytes | None], bytes]] = {
    A: _rd_a, AAAA: _rd_aaaa, NS: _rd_name, CNAME: _rd_name, PTR: _rd_name, DNAME: _rd_name,
    MX: _rd_mx, SOA: _rd_soa,
}


def _slow_rdata(rtype: int, text: str, origin: bytes | None) -> bytes:
    """Rdata in any presentation format, by dnspython's parser for the type."""
    import dns.exception
    import dns.name
    import dns.rdata

    try:
        base = dns.name.from_wire(origin, 0)[0] if origin is not None else None
        rd = dns.rdata.from_text(1, rtype, text, origin=base, relativize=False)
        wire = rd.to_wire()
    except dns.exception.DNSException as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    if wire is None:
        raise ValueError("rdata has no wire form")
    return wire


def read_zone_text(
    path: str,
    text: str,
    origin: bytes | None = None,
    read_text: Callable[[str], str] | None = None,
    *,
    fast: bool = True,
) -> tuple[bytes | None, list[Record]]:
    """Read a master file; return (its origin, the records in file order).

    ``origin`` is the origin in effect at the top of the file (None: it must come from a
    ``$ORIGIN`` line); the returned origin is that or the first ``$ORIGIN``.  ``read_text``
    reads ``$INCLUDE`` files (relative paths are relative to the including file); without
    it ``$INCLUDE`` is an error.  ``fast=False`` reads every line by the general path, which
    the tests use to check that the fast path gives the same records.
    """

    def no_include(target: str) -> str:
        raise OSError("$INCLUDE is not available for this zone")

    reader = _Reader(read_text or no_include, fast)
    if origin is not None:
        reader.first_origin = origin
    reader.read(path, text, origin, 0)
    return reader.first_origin, reader.records
