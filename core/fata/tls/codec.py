"""Wire codecs: bounds-checked reading of TLS vectors and integers, and their encoders.

Every read checks its length, so a short or overlong field becomes a ``decode_error`` alert
instead of an ``IndexError`` or silently wrong data.
"""

from __future__ import annotations

from fata.tls.alerts import AlertDescription, TLSAlert


def decode_error(reason: str) -> TLSAlert:
    """The alert for a message that does not parse."""
    return TLSAlert(AlertDescription.decode_error, reason)


class Reader:
    """A cursor over a byte string; every method raises ``decode_error`` when data runs out."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def eof(self) -> bool:
        return self.pos >= self.end

    def expect_end(self, what: str = "message") -> None:
        if self.pos != self.end:
            raise decode_error(f"trailing bytes after {what}")

    def _take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise decode_error("truncated field")
        self.pos = start + n
        return start

    def u8(self) -> int:
        return self.data[self._take(1)]

    def u16(self) -> int:
        s = self._take(2)
        return (self.data[s] << 8) | self.data[s + 1]

    def u24(self) -> int:
        s = self._take(3)
        d = self.data
        return (d[s] << 16) | (d[s + 1] << 8) | d[s + 2]

    def u32(self) -> int:
        s = self._take(4)
        return int.from_bytes(self.data[s : s + 4], "big")

    def raw(self, n: int) -> bytes:
        s = self._take(n)
        return bytes(self.data[s : s + n])

    def vec8(self, min_len: int = 0) -> bytes:
        n = self.u8()
        if n < min_len:
            raise decode_error("vector too short")
        return self.raw(n)

    def vec16(self, min_len: int = 0) -> bytes:
        n = self.u16()
        if n < min_len:
            raise decode_error("vector too short")
        return self.raw(n)

    def vec24(self, min_len: int = 0) -> bytes:
        n = self.u24()
        if n < min_len:
            raise decode_error("vector too short")
        return self.raw(n)

    def sub16(self, min_len: int = 0) -> Reader:
        """A reader over the next 16-bit-length-prefixed vector (no copy)."""
        n = self.u16()
        if n < min_len:
            raise decode_error("vector too short")
        s = self._take(n)
        return Reader(self.data, s, s + n)

    def sub24(self) -> Reader:
        n = self.u24()
        s = self._take(n)
        return Reader(self.data, s, s + n)

    def u16_list(self, len_bytes: int = 2, min_len: int = 2) -> list[int]:
        """A vector of 16-bit values (cipher suites, groups, signature schemes)."""
        n = self.u16() if len_bytes == 2 else self.u8()
        if n % 2 or n < min_len:
            raise decode_error("bad u16 list length")
        s = self._take(n)
        d = self.data
        return [(d[i] << 8) | d[i + 1] for i in range(s, s + n, 2)]


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def vec8(b: bytes) -> bytes:
    return bytes((len(b),)) + b


def vec16(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def vec24(b: bytes) -> bytes:
    return len(b).to_bytes(3, "big") + b


def u16_list(values: list[int] | tuple[int, ...], len_bytes: int = 2) -> bytes:
    body = b"".join(v.to_bytes(2, "big") for v in values)
    return len(body).to_bytes(len_bytes, "big") + body
