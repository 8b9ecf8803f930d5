"""TLS 1.2 server side (RFC 5246) for clients that lack 1.3: ECDHE with RSA/ECDSA/Ed25519
certificates, AES-GCM and ChaCha20-Poly1305, extended master secret (RFC 7627), secure
renegotiation signalling (RFC 5746) and no renegotiation.  No session resumption.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fata.tls import extensions as X
from fata.tls.alerts import AlertDescription, AlertLevel, TLSAlert
from fata.tls.codec import Reader, u16, vec8, vec16, vec24
from fata.tls.groups import SECP256R1, KeyShare
from fata.tls.keyschedule import prf12
from fata.tls.messages import (
    CERTIFICATE,
    CLIENT_HELLO,
    CLIENT_KEY_EXCHANGE,
    FINISHED,
    SERVER_HELLO,
    SERVER_HELLO_DONE,
    SERVER_KEY_EXCHANGE,
    ClientHello,
    parse_tls12_extensions,
)
from fata.tls.record import MAX_PLAINTEXT, Protection12
from fata.tls.sigalgs import sign
from fata.tls.states import ServerState
from fata.tls.suites import EMPTY_RENEGOTIATION_INFO_SCSV, SUITES, TLS12, TLS13

if TYPE_CHECKING:
    from fata.tls.connection import TLSConnection

    _Base = TLSConnection
else:
    _Base = object

DOWNGRADE_TLS12 = b"DOWNGRD\x01"


class TLS12ServerMixin(_Base):
    """The TLS 1.2 half of ``TLSServer``: ``TLS12_WAIT_CKE`` -> ``TLS12_WAIT_CCS`` ->
    ``TLS12_WAIT_FINISHED`` -> ``CONNECTED``."""

    state: ServerState

    def _tls12_client_hello(self, ch: ClientHello) -> None:
        from fata.tls.server import select_certificate

        cfg = self.config
        parse_tls12_extensions(ch)
        self.version = TLS12
        self.server_name = ch.server_name
        if 0 not in ch.compression_methods:
            raise TLSAlert(AlertDescription.illegal_parameter, "null compression not offered")
        if ch.renegotiation_info not in (None, b""):
            raise TLSAlert(AlertDescription.handshake_failure, "renegotiation_info not empty")
        secure_reneg = (
            ch.renegotiation_info is not None or EMPTY_RENEGOTIATION_INFO_SCSV in ch.cipher_suites
        )
        if ch.signature_algorithms is None:
            raise TLSAlert(AlertDescription.handshake_failure, "signature_algorithms required")
        if ch.ec_point_formats is not None and 0 not in ch.ec_point_formats:
            raise TLSAlert(AlertDescription.illegal_parameter, "uncompressed points required")
        groups = ch.groups or [SECP256R1]
        group = next((g for g in cfg.groups if g in groups), None)
        if group is None:
            raise TLSAlert(AlertDescription.handshake_failure, "no common group")
        chosen = None
        for code in cfg.cipher_suites:
            suite = SUITES[code]
            if suite.version != TLS12 or code not in ch.cipher_suites:
                continue
            families = ("rsa",) if suite.kx == "rsa" else ("ecdsa", "ed25519")
            picked = select_certificate(
                cfg, ch.server_name, ch.signature_algorithms, False, families
            )
            if picked is not None:
                chosen = (suite, picked[0], picked[1])
                break
        if chosen is None:
            raise TLSAlert(AlertDescription.handshake_failure, "no common cipher suite")
        suite, certified, scheme = chosen
        self.suite = suite
        self.group = group
        self.signature_scheme = scheme
        self._ems = ch.ems
        self._client_random = ch.random
        exts = b""
        if secure_reneg:
            exts += X.ext(X.RENEGOTIATION_INFO, b"\x00")
        if ch.ems:
            exts += X.ext(X.EXTENDED_MASTER_SECRET)
        if ch.ec_point_formats is not None:
            exts += X.ext(X.EC_POINT_FORMATS, vec8(b"\x00"))
        if ch.alpn is not None and cfg.alpn_protocols:
            self.alpn = X.select_alpn(cfg.alpn_protocols, ch.alpn)
            exts += X.ext(X.ALPN, X.encode_alpn([self.alpn.encode()]))
        if ch.record_size_limit is not None:
            self._send_limit = min(MAX_PLAINTEXT, ch.record_size_limit)
            limit = min(MAX_PLAINTEXT, cfg.record_size_limit or MAX_PLAINTEXT)
            self._recv_plain_limit = limit
            exts += X.ext(X.RECORD_SIZE_LIMIT, u16(limit))
        tail = DOWNGRADE_TLS12 if cfg.max_version >= TLS13 else self._random(8)
        self._server_random = self._random(24) + tail
        self.transcript += ch.raw
        body = u16(TLS12) + self._server_random + b"\x00" + u16(suite.code) + b"\x00"
        if exts:
            body += vec16(exts)
        self._send_handshake(SERVER_HELLO, body)
        self._send_handshake(CERTIFICATE, vec24(b"".join(vec24(d) for d in certified.der_chain)))
        share = KeyShare(group, self._random)
        self._share12 = share
        params = b"\x03" + u16(group) + vec8(share.public)
        signature = sign(certified.key, scheme, ch.random + self._server_random + params)
        self._send_handshake(SERVER_KEY_EXCHANGE, params + u16(scheme) + vec16(signature))
        self._send_handshake(SERVER_HELLO_DONE, b"")
        self._to(ServerState.TLS12_WAIT_CKE)

    def _tls12_handshake(self, msg_type: int, raw: bytes) -> None:
        state = self.state
        if state is ServerState.TLS12_WAIT_CKE and msg_type == CLIENT_KEY_EXCHANGE:
            self._on_client_key_exchange(raw)
        elif state is ServerState.TLS12_WAIT_FINISHED and msg_type == FINISHED:
            self._on_finished12(raw)
        elif state is ServerState.CONNECTED and msg_type == CLIENT_HELLO:
            # RFC 5746: we do not renegotiate; refuse politely and carry on.
            self._send_alert(AlertLevel.WARNING, AlertDescription.no_renegotiation)
        else:
            raise TLSAlert(AlertDescription.unexpected_message, f"unexpected message {msg_type}")

    def _on_client_key_exchange(self, raw: bytes) -> None:
        r = Reader(raw, 4)
        public = r.vec8(min_len=1)
        r.expect_end("ClientKeyExchange")
        pms = self._share12.exchange(public)
        self.transcript += raw
        suite = self.suite
        assert suite is not None
        h = suite.hash_name
        if self._ems:
            session_hash = suite.hash(bytes(self.transcript)).digest()
            master = prf12(h, pms, b"extended master secret", session_hash, 48)
        else:
            master = prf12(h, pms, b"master secret", self._client_random + self._server_random, 48)
        self._master = master
        iv_len = 12 if suite.chacha else 4
        kl = suite.key_len
        block = prf12(
            h,
            master,
            b"key expansion",
            self._server_random + self._client_random,
            2 * kl + 2 * iv_len,
        )
        ck, sk = block[:kl], block[kl : 2 * kl]
        civ, siv = block[2 * kl : 2 * kl + iv_len], block[2 * kl + iv_len :]
        self._pending_read = Protection12(suite, ck, civ)
        self._pending_write = Protection12(suite, sk, siv)
        self._to(ServerState.TLS12_WAIT_CCS)

    def _on_change_cipher_spec(self) -> None:
        if self.state is not ServerState.TLS12_WAIT_CCS:
            raise TLSAlert(AlertDescription.unexpected_message, "unexpected ChangeCipherSpec")
        self._set_read(self._pending_read)
        self._to(ServerState.TLS12_WAIT_FINISHED)

    def _on_finished12(self, raw: bytes) -> None:
        suite = self.suite
        assert suite is not None
        h = suite.hash_name
        expected = prf12(
            h, self._master, b"client finished", suite.hash(bytes(self.transcript)).digest(), 12
        )
        if len(raw) != 16:
            raise TLSAlert(AlertDescription.decode_error, "bad Finished length")
        if not hmac.compare_digest(raw[4:], expected):
            raise TLSAlert(AlertDescription.decrypt_error, "client Finished mismatch")
        self.transcript += raw
        self._send_ccs()
        self._set_write(self._pending_write)
        verify = prf12(
            h, self._master, b"server finished", suite.hash(bytes(self.transcript)).digest(), 12
        )
        self._send_handshake(FINISHED, verify)
        self._flush_handshake()
        self._to(ServerState.CONNECTED)
        self._complete()
