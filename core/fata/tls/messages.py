"""Handshake message codecs: framing plus ClientHello / ServerHello parsing.

Messages whose bodies are a handful of fields are built and parsed inline by the state
machines; the hellos, which carry most of the negotiation, are parsed here into plain
objects so both state machines and the fuzz tests share one strict parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fata.tls import extensions as X
from fata.tls.alerts import AlertDescription, TLSAlert
from fata.tls.codec import Reader, decode_error, u24

HELLO_REQUEST = 0
CLIENT_HELLO = 1
SERVER_HELLO = 2
NEW_SESSION_TICKET = 4
END_OF_EARLY_DATA = 5
ENCRYPTED_EXTENSIONS = 8
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14
CERTIFICATE_VERIFY = 15
CLIENT_KEY_EXCHANGE = 16
FINISHED = 20
KEY_UPDATE = 24
MESSAGE_HASH = 254


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes((msg_type,)) + u24(len(body)) + body


@dataclass
class ClientHello:
    raw: bytes
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: bytes
    extensions: dict[int, bytes]
    order: list[int]
    server_name: str | None = None
    versions: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    signature_algorithms: list[int] | None = None
    key_shares: list[tuple[int, bytes]] | None = None
    alpn: list[bytes] | None = None
    psk_modes: list[int] | None = None
    psk_identities: list[tuple[bytes, int]] = field(default_factory=list)
    psk_binders: list[bytes] = field(default_factory=list)
    binders_offset: int = 0
    cookie: bytes | None = None
    record_size_limit: int | None = None
    ems: bool = False
    renegotiation_info: bytes | None = None
    early_data: bool = False
    ec_point_formats: bytes | None = None


def parse_client_hello(raw: bytes) -> ClientHello:
    """Parse a full ClientHello message (with its 4-byte header)."""
    r = Reader(raw, 4)
    legacy_version = r.u16()
    random = r.raw(32)
    session_id = r.vec8()
    if len(session_id) > 32:
        raise decode_error("session id too long")
    suites = r.u16_list(min_len=2)
    compression = r.vec8(min_len=1)
    if r.eof():
        exts: dict[int, bytes] = {}
        order: list[int] = []
    else:
        exts, order = X.parse_extensions(r)
    r.expect_end("ClientHello")
    ch = ClientHello(raw, legacy_version, random, session_id, suites, compression, exts, order)
    if X.SERVER_NAME in exts:
        ch.server_name = X.parse_server_name(exts[X.SERVER_NAME])
    if X.SUPPORTED_VERSIONS in exts:
        rv = Reader(exts[X.SUPPORTED_VERSIONS])
        ch.versions = rv.u16_list(len_bytes=1)
        rv.expect_end("supported_versions")
    if X.SUPPORTED_GROUPS in exts:
        ch.groups = X.parse_u16_list_ext(exts[X.SUPPORTED_GROUPS])
    if X.SIGNATURE_ALGORITHMS in exts:
        ch.signature_algorithms = X.parse_u16_list_ext(exts[X.SIGNATURE_ALGORITHMS])
    if X.KEY_SHARE in exts:
        ch.key_shares = X.parse_client_key_shares(exts[X.KEY_SHARE])
    if X.ALPN in exts:
        ch.alpn = X.parse_alpn(exts[X.ALPN])
    if X.PSK_KEY_EXCHANGE_MODES in exts:
        rm = Reader(exts[X.PSK_KEY_EXCHANGE_MODES])
        ch.psk_modes = list(rm.vec8(min_len=1))
        rm.expect_end("psk_key_exchange_modes")
    if X.COOKIE in exts:
        rc = Reader(exts[X.COOKIE])
        ch.cookie = rc.vec16(min_len=1)
        rc.expect_end("cookie")
    if X.RECORD_SIZE_LIMIT in exts:
        ch.record_size_limit = X.parse_record_size_limit(exts[X.RECORD_SIZE_LIMIT])
    ch.early_data = X.EARLY_DATA in exts
    if X.PRE_SHARED_KEY in exts:
        if order[-1] != X.PRE_SHARED_KEY:
            raise TLSAlert(AlertDescription.illegal_parameter, "pre_shared_key not last")
        rp = Reader(exts[X.PRE_SHARED_KEY])
        ids = rp.sub16(min_len=7)
        while not ids.eof():
            identity = ids.vec16(min_len=1)
            ch.psk_identities.append((identity, ids.u32()))
        binders_len = len(exts[X.PRE_SHARED_KEY]) - rp.pos
        binders = rp.sub16(min_len=33)
        while not binders.eof():
            ch.psk_binders.append(binders.vec8(min_len=32))
        rp.expect_end("pre_shared_key")
        if len(ch.psk_binders) != len(ch.psk_identities):
            raise TLSAlert(AlertDescription.illegal_parameter, "binder count mismatch")
        ch.binders_offset = len(raw) - binders_len
    return ch


def parse_tls12_extensions(ch: ClientHello) -> None:
    """The extensions only TLS 1.2 reads; a TLS 1.3 server ignores them, malformed or not."""
    exts = ch.extensions
    if X.EXTENDED_MASTER_SECRET in exts:
        if exts[X.EXTENDED_MASTER_SECRET]:
            raise decode_error("extended_master_secret not empty")
        ch.ems = True
    if X.RENEGOTIATION_INFO in exts:
        rr = Reader(exts[X.RENEGOTIATION_INFO])
        ch.renegotiation_info = rr.vec8()
        rr.expect_end("renegotiation_info")
    if X.EC_POINT_FORMATS in exts:
        re_ = Reader(exts[X.EC_POINT_FORMATS])
        ch.ec_point_formats = re_.vec8(min_len=1)
        re_.expect_end("ec_point_formats")


@dataclass
class ServerHello:
    raw: bytes
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression: int
    extensions: dict[int, bytes]


def parse_server_hello(raw: bytes) -> ServerHello:
    r = Reader(raw, 4)
    version = r.u16()
    random = r.raw(32)
    session_id = r.vec8()
    if len(session_id) > 32:
        raise decode_error("session id too long")
    suite = r.u16()
    compression = r.u8()
    exts: dict[int, bytes] = {}
    if not r.eof():
        exts, _ = X.parse_extensions(r)
    r.expect_end("ServerHello")
    return ServerHello(raw, version, random, session_id, suite, compression, exts)


def parse_certificate_list(body: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message (TLS 1.3 or 1.2 layout)."""
    r = Reader(body)
    if tls13:
        context = r.vec8()
        if context:
            raise TLSAlert(AlertDescription.illegal_parameter, "unexpected certificate context")
    lst = r.sub24()
    r.expect_end("Certificate")
    out = []
    while not lst.eof():
        out.append(lst.vec24(min_len=1))
        if tls13:
            lst.vec16()  # per-certificate extensions (OCSP, SCT): ignored
    return out
