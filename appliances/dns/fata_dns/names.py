"""Domain names as uncompressed wire bytes: the engine's one representation of a name.

The engine keeps every name as its wire form (``b"\\x03www\\x07example\\x03org\\x00"``) and
matches on the lowercased bytes.  ``bytes.lower()`` folds exactly ASCII ``A``-``Z``, which is
DNS case-insensitivity (RFC 4343), so a dictionary lookup on ``name.lower()`` is a
case-insensitive lookup with no per-label work.  The parent of a name is a slice
(``name[name[0] + 1:]``), which makes walking towards the root cheap.
"""

from __future__ import annotations

ROOT = b"\x00"
MAX_NAME = 255
MAX_LABEL = 63


class BadName(ValueError):
    """A name that is not a valid domain name (label too long, name too long, bad syntax)."""


def is_subdomain(name: bytes, zone: bytes) -> bool:
    """Whether ``name`` equals ``zone`` or lies below it (both lowercase wire)."""
    if not name.endswith(zone):
        return False
    if len(name) == len(zone):
        return True
    # The suffix must start on a label boundary of ``name``.
    i = 0
    cut = len(name) - len(zone)
    while i < cut:
        i += name[i] + 1
    return i == cut


def ancestors(name: bytes, stop: bytes) -> list[bytes]:
    """Names strictly between ``stop`` and ``name``, plus ``name``, from the top down.

    ``name`` must be a subdomain of ``stop``.
    """
    out = []
    while len(name) > len(stop):
        out.append(name)
        name = name[name[0] + 1 :]
    out.reverse()
    return out


_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")


def to_text(name: bytes) -> str:
    """Presentation form with escapes, for logs and error messages."""
    if name == ROOT:
        return "."
    labels = []
    i = 0
    try:
        while name[i]:
            label = name[i + 1 : i + 1 + name[i]]
            if not _PLAIN.issuperset(label):
                break
            labels.append(label.decode("ascii"))
            i += name[i] + 1
        else:
            return ".".join(labels) + "."
    except IndexError:
        return repr(name)
    import dns.exception
    import dns.name

    try:
        return dns.name.from_wire(name, 0)[0].to_text()
    except dns.exception.DNSException:
        return repr(name)


def from_text(text: str, origin: bytes | None) -> bytes:
    """Wire form of ``text``; relative names get ``origin`` appended (``@`` is the origin).

    Plain ASCII names are converted directly; names with escapes or non-ASCII characters go
    through dnspython, which knows the escape and IDNA rules.
    """
    if text == "@":
        if origin is None:
            raise BadName("'@' used with no origin set")
        return origin
    if "\\" in text or not text.isascii():
        import dns.exception
        import dns.name

        try:
            if origin is not None:
                base = dns.name.from_wire(origin, 0)[0]
            else:
                base = None
            name = dns.name.from_text(text, base)
            if not name.is_absolute():
                raise BadName(f"relative name {text!r} with no origin set")
            return name.to_wire()
        except dns.exception.DNSException as exc:
            raise BadName(f"bad name {text!r}: {exc}") from None
    if text == ".":
        return ROOT
    absolute = text.endswith(".")
    labels = (text[:-1] if absolute else text).split(".")
    out = bytearray()
    for label in labels:
        n = len(label)
        if n == 0:
            raise BadName(f"bad name {text!r}: empty label")
        if n > MAX_LABEL:
            raise BadName(f"bad name {text!r}: label longer than 63 octets")
        out.append(n)
        out += label.encode("ascii")
    if absolute:
        out.append(0)
    else:
        if origin is None:
            raise BadName(f"relative name {text!r} with no origin set")
        out += origin
    if len(out) > MAX_NAME:
        raise BadName(f"bad name {text!r}: longer than 255 octets")
    return bytes(out)


# Bounded decompression (issue 12).  A name has at most 127 labels (255 octets), and a
# compressor needs at most one pointer per label (each name written as one new label and
# a pointer to the previous one nests the pointers as deep as the labels), so no
# legitimate name follows more than 127 pointers.  BIND 9 up to 9.18 is stricter
# (DNS_POINTER_MAXHOPS = 16); 127 rejects nothing a compressor can produce, and the work
# stays bounded by the message anyway.  Only backward pointers are accepted, so there are
# no loops, but without a bound a 64 KB message of names that each hop through a chain of
# thousands of pointers costs tens of millions of steps; the per-name bound makes one
# name at most MAX_HOPS + 128 steps, and a :class:`Budget` bounds the whole message.
MAX_HOPS = 127
STEPS_PER_OCTET = 2


class Budget:
    """The decompression work one message may cost: ``steps`` used (a step is one label,
    one pointer followed or the root label, read by :func:`read_name` or walked over by
    :func:`skip_name`) out of ``limit``.

    :meth:`for_message` gives ``STEPS_PER_OCTET * len(msg)``: walking a name in place
    costs at most one step per octet, and a query decompresses only its question and OPT
    owner, so a legitimate query stays well inside it; going over is a malformed message
    (``ValueError``, which the query parser answers FORMERR).
    """

    __slots__ = ("limit", "steps")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.steps = 0

    @classmethod
    def for_message(cls, msg: bytes) -> Budget:
        return cls(STEPS_PER_OCTET * len(msg))


_OVER_BUDGET = "name decompression over the message's work budget"


def read_name(msg: bytes, offset: int, budget: Budget | None = None) -> tuple[bytes, int]:
    """Read a possibly compressed name at ``offset``; return (wire name, offset after it).

    Raises ``ValueError`` for a truncated name, a bad label type, a pointer loop (only
    backward pointers are accepted), more than :data:`MAX_HOPS` pointers, a name longer
    than 255 octets, or (with ``budget``) work beyond what is left of the budget, which is
    charged with the steps taken.
    """
    out = bytearray()
    end = -1
    limit = offset
    n = len(msg)
    hops = 0
    steps = 0
    room = budget.limit - budget.steps if budget is not None else MAX_HOPS + 128
    try:
        while True:
            steps += 1
            if steps > room:
                raise ValueError(_OVER_BUDGET)
            if offset >= n:
                raise ValueError("name runs past the end of the message")
            length = msg[offset]
            if length == 0:
                out.append(0)
                offset += 1
                break
            kind = length & 0xC0
            if kind == 0xC0:
                if offset + 1 >= n:
                    raise ValueError("truncated compression pointer")
                target = ((length & 0x3F) << 8) | msg[offset + 1]
                if end < 0:
                    end = offset + 2
                if target >= limit:
                    raise ValueError("compression pointer does not point backwards")
                hops += 1
                if hops > MAX_HOPS:
                    raise ValueError("more than 127 compression pointers in one name")
                limit = target
                offset = target
                continue
            if kind:
                raise ValueError("unsupported label type")
            if offset + 1 + length > n:
                raise ValueError("label runs past the end of the message")
            out += msg[offset : offset + 1 + length]
            offset += 1 + length
            if len(out) > MAX_NAME - 1:
                raise ValueError("name longer than 255 octets")
    finally:
        if budget is not None:
            budget.steps += steps
    return bytes(out), (end if end >= 0 else offset)


def skip_name(msg: bytes, offset: int, budget: Budget | None = None) -> int:
    """The offset after the name at ``offset``, without decompressing it.

    For names nobody will read (the owners of records a query cannot need): the labels
    written at ``offset`` are walked up to the root label or the first compression
    pointer, which must point backwards (before ``offset``) and is not followed.  So the
    work is at most one step per octet walked.  Raises ``ValueError`` as
    :func:`read_name` does for what can be seen without following the pointer.
    """
    start = offset
    n = len(msg)
    steps = 0
    room = budget.limit - budget.steps if budget is not None else n + 1
    try:
        while True:
            steps += 1
            if steps > room:
                raise ValueError(_OVER_BUDGET)
            if offset >= n:
                raise ValueError("name runs past the end of the message")
            length = msg[offset]
            if length == 0:
                offset += 1
                break
            kind = length & 0xC0
            if kind == 0xC0:
                if offset + 1 >= n:
                    raise ValueError("truncated compression pointer")
                if ((length & 0x3F) << 8) | msg[offset + 1] >= start:
                    raise ValueError("compression pointer does not point backwards")
                offset += 2
                break
            if kind:
                raise ValueError("unsupported label type")
            offset += 1 + length
            if offset > n:
                raise ValueError("label runs past the end of the message")
            if offset - start > MAX_NAME - 1:
                raise ValueError("name longer than 255 octets")
    finally:
        if budget is not None:
            budget.steps += steps
    return offset
