"""Extension codes and the codecs of the extensions we read or write."""

from __future__ import annotations

from fata.tls.alerts import AlertDescription, TLSAlert
from fata.tls.codec import Reader, decode_error, u16, vec8, vec16

SERVER_NAME = 0
STATUS_REQUEST = 5
SUPPORTED_GROUPS = 10
EC_POINT_FORMATS = 11
SIGNATURE_ALGORITHMS = 13
ALPN = 16
SCT = 18
PADDING = 21
EXTENDED_MASTER_SECRET = 23
RECORD_SIZE_LIMIT = 28
SESSION_TICKET = 35
PRE_SHARED_KEY = 41
EARLY_DATA = 42
SUPPORTED_VERSIONS = 43
COOKIE = 44
PSK_KEY_EXCHANGE_MODES = 45
KEY_SHARE = 51
RENEGOTIATION_INFO = 0xFF01

PSK_DHE_KE = 1


def ext(ext_type: int, data: bytes = b"") -> bytes:
    return u16(ext_type) + vec16(data)


def parse_extensions(r: Reader) -> tuple[dict[int, bytes], list[int]]:
    """A block of extensions: {type: data} and their order; duplicates are illegal."""
    block = r.sub16()
    exts: dict[int, bytes] = {}
    order: list[int] = []
    while not block.eof():
        t = block.u16()
        data = block.vec16()
        if t in exts:
            raise TLSAlert(AlertDescription.illegal_parameter, f"duplicate extension {t}")
        exts[t] = data
        order.append(t)
    return exts, order


def parse_server_name(data: bytes) -> str | None:
    r = Reader(data)
    names = r.sub16(min_len=1)
    r.expect_end("server_name")
    host = None
    while not names.eof():
        kind = names.u8()
        name = names.vec16(min_len=1)
        if kind == 0:
            if host is not None:
                raise TLSAlert(AlertDescription.illegal_parameter, "two host names")
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError:
                raise decode_error("non-ASCII host name") from None
    return host


def encode_server_name(host: str) -> bytes:
    entry = b"\x00" + vec16(host.encode("ascii"))
    return vec16(entry)


def parse_u16_list_ext(data: bytes, len_bytes: int = 2) -> list[int]:
    r = Reader(data)
    values = r.u16_list(len_bytes)
    r.expect_end("list extension")
    return values


def parse_alpn(data: bytes) -> list[bytes]:
    r = Reader(data)
    lst = r.sub16(min_len=2)
    r.expect_end("alpn")
    out = []
    while not lst.eof():
        out.append(lst.vec8(min_len=1))
    return out


def encode_alpn(protocols: list[bytes]) -> bytes:
    return vec16(b"".join(vec8(p) for p in protocols))


def parse_client_key_shares(data: bytes) -> list[tuple[int, bytes]]:
    r = Reader(data)
    lst = r.sub16()
    r.expect_end("key_share")
    out = []
    seen = set()
    while not lst.eof():
        group = lst.u16()
        key = lst.vec16()  # empty is illegal_parameter when used (as tlsfuzzer expects)
        if group in seen:
            raise TLSAlert(AlertDescription.illegal_parameter, "duplicate key share group")
        seen.add(group)
        out.append((group, key))
    return out


def parse_record_size_limit(data: bytes) -> int:
    r = Reader(data)
    value = r.u16()
    r.expect_end("record_size_limit")
    if value < 64:
        raise TLSAlert(AlertDescription.illegal_parameter, "record_size_limit below 64")
    return value


def select_alpn(preferred: list[str], offered: list[bytes]) -> str:
    """The server's most preferred protocol the client offered (RFC 7301: the server's
    preference wins); ``no_application_protocol`` when there is none in common."""
    offered_set = set(offered)
    chosen = next((p for p in preferred if p.encode() in offered_set), None)
    if chosen is None:
        raise TLSAlert(AlertDescription.no_application_protocol, "no common ALPN")
    return chosen
