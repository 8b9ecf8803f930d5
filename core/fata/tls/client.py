"""The client state machine: TLS 1.3 only (RFC 8446), with HelloRetryRequest, certificate
validation with host-name checks, PSK resumption from tickets and KeyUpdate.

States (``fata.tls.states.ClientState``, moves in ``CLIENT_TRANSITIONS``): ``WAIT_SH`` ->
``WAIT_EE`` -> ``WAIT_CERT_CR`` (-> ``WAIT_CERT``) -> ``WAIT_CV`` -> ``WAIT_FINISHED`` ->
``CONNECTED``; a resumed handshake goes from ``WAIT_EE`` straight to ``WAIT_FINISHED``.
"""

from __future__ import annotations

import hmac
import ipaddress

from cryptography import x509

from fata.tls import extensions as X
from fata.tls.alerts import AlertDescription, TLSAlert
from fata.tls.certs import verify_chain
from fata.tls.codec import Reader, u16, u16_list, u32, vec8, vec16, vec24
from fata.tls.config import TLSConfig
from fata.tls.connection import TLSConnection
from fata.tls.events import SessionTicket, SessionTicketReceived
from fata.tls.groups import KeyShare
from fata.tls.keyschedule import HRR_RANDOM, KeySchedule
from fata.tls.messages import (
    CERTIFICATE,
    CERTIFICATE_REQUEST,
    CERTIFICATE_VERIFY,
    CLIENT_HELLO,
    ENCRYPTED_EXTENSIONS,
    FINISHED,
    KEY_UPDATE,
    MESSAGE_HASH,
    NEW_SESSION_TICKET,
    SERVER_HELLO,
    ServerHello,
    handshake,
    parse_certificate_list,
    parse_server_hello,
)
from fata.tls.record import MAX_PLAINTEXT, Protection13
from fata.tls.server import CV_SERVER_CONTEXT
from fata.tls.sigalgs import TLS13_SCHEMES, verify
from fata.tls.states import CLIENT_TRANSITIONS, ClientState
from fata.tls.suites import SUITES, TLS13, CipherSuite
from fata.tls.tls12 import DOWNGRADE_TLS12

_SH_ALLOWED = frozenset((X.KEY_SHARE, X.PRE_SHARED_KEY, X.SUPPORTED_VERSIONS))
_HRR_ALLOWED = frozenset((X.KEY_SHARE, X.COOKIE, X.SUPPORTED_VERSIONS))

_C = ClientState
_HANDLERS: dict[ClientState, dict[int, str]] = {
    _C.WAIT_SH: {SERVER_HELLO: "_on_server_hello"},
    _C.WAIT_EE: {ENCRYPTED_EXTENSIONS: "_on_encrypted_extensions"},
    _C.WAIT_CERT_CR: {
        CERTIFICATE_REQUEST: "_on_certificate_request",
        CERTIFICATE: "_on_certificate",
    },
    _C.WAIT_CERT: {CERTIFICATE: "_on_certificate"},
    _C.WAIT_CV: {CERTIFICATE_VERIFY: "_on_certificate_verify"},
    _C.WAIT_FINISHED: {FINISHED: "_on_finished"},
    _C.CONNECTED: {NEW_SESSION_TICKET: "_on_new_session_ticket", KEY_UPDATE: "_handle_key_update"},
}
"""The messages each state accepts and the method handling each; any other is
unexpected_message."""


class TLSClient(TLSConnection):
    """A client-side TLS 1.3 connection.  The ClientHello is ready in ``data_to_send()``
    as soon as the object exists."""

    is_client = True
    state: ClientState
    _transitions = CLIENT_TRANSITIONS

    def __init__(
        self,
        config: TLSConfig,
        server_name: str | None = None,
        session: SessionTicket | None = None,
        now: float | None = None,
    ) -> None:
        super().__init__(config, now)
        if config.verify_peer and now is None:
            raise ValueError("certificate validation needs the current time (now=...)")
        self.server_name = server_name
        self.version = TLS13
        self._suites = [c for c in config.cipher_suites if SUITES[c].version == TLS13]
        if not self._suites:
            raise ValueError("no TLS 1.3 cipher suite configured")
        if session is not None and (
            session.cipher_suite not in self._suites
            or (now is not None and now - session.received_at > session.lifetime)
        ):
            session = None
        self._session = session
        self._random_value = self._random(32)
        self._session_id = self._random(32) if config.middlebox_compat else b""
        self._ccs_sent = False
        self._hrr_suite: CipherSuite | None = None
        self._cookie: bytes | None = None
        self._ks: KeySchedule | None = None
        self._cert_request_context: bytes | None = None
        self._peer_public_key: object = None
        self._peer_certs: list[bytes] = []
        self._c_hs = b""
        self._s_hs = b""
        self._res_master = b""
        self._ccs_ok = True
        self._record_version = b"\x03\x01"
        groups = config.key_share_groups or config.groups[:1]
        self._shares = {g: KeyShare(g, self._random) for g in groups}
        self.state = ClientState.WAIT_SH
        self._ch1 = self._send_client_hello()
        self._record_version = b"\x03\x03"

    # -------------------------------------------------------------- ClientHello

    def _send_client_hello(self) -> bytes:
        cfg = self.config
        exts = b""
        name = self.server_name
        if name:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                exts += X.ext(X.SERVER_NAME, X.encode_server_name(name))
        exts += X.ext(X.SUPPORTED_GROUPS, u16_list(cfg.groups))
        exts += X.ext(X.SIGNATURE_ALGORITHMS, u16_list(cfg.signature_schemes))
        if cfg.alpn_protocols:
            exts += X.ext(X.ALPN, X.encode_alpn([p.encode() for p in cfg.alpn_protocols]))
        exts += X.ext(X.SUPPORTED_VERSIONS, vec8(u16(TLS13)))
        exts += X.ext(X.PSK_KEY_EXCHANGE_MODES, vec8(bytes((X.PSK_DHE_KE,))))
        shares = b"".join(u16(g) + vec16(s.public) for g, s in self._shares.items())
        exts += X.ext(X.KEY_SHARE, vec16(shares))
        if cfg.record_size_limit:
            exts += X.ext(X.RECORD_SIZE_LIMIT, u16(cfg.record_size_limit))
            self._recv_plain_limit = min(MAX_PLAINTEXT, cfg.record_size_limit - 1)
        if self._cookie is not None:
            exts += X.ext(X.COOKIE, vec16(self._cookie))
        session = self._session
        psk_suite = SUITES[session.cipher_suite] if session else None
        if session is not None and psk_suite is not None:
            age = int(((self.now or 0.0) - session.received_at) * 1000)
            obfuscated = (age + session.age_add) % (1 << 32)
            identities = vec16(vec16(session.ticket) + u32(obfuscated))
            dummy_binders = vec16(vec8(bytes(psk_suite.hash_len)))
            exts += X.ext(X.PRE_SHARED_KEY, identities + dummy_binders)
        body = (
            u16(0x0303)
            + self._random_value
            + vec8(self._session_id)
            + u16_list(self._suites)
            + b"\x01\x00"
            + vec16(exts)
        )
        raw = handshake(CLIENT_HELLO, body)
        if session is not None and psk_suite is not None:
            cut = len(raw) - (3 + psk_suite.hash_len)
            ks = KeySchedule(psk_suite, session.psk)
            th = ks.transcript_hash(bytes(self.transcript) + raw[:cut])
            raw = raw[:cut] + vec16(vec8(ks.finished_mac(ks.binder_key(), th)))
        self.transcript += raw
        self._hs_out += raw
        self._flush_handshake()
        return raw

    # ------------------------------------------------------------------ dispatch

    def _handle_handshake(self, msg_type: int, raw: bytes) -> None:
        handler = _HANDLERS[self.state].get(msg_type)
        if handler is None:
            raise TLSAlert(
                AlertDescription.unexpected_message,
                f"unexpected message {msg_type} in {self.state.value}",
            )
        getattr(self, handler)(raw)

    def _send_compat_ccs(self) -> None:
        if self.config.middlebox_compat and not self._ccs_sent:
            self._send_ccs()
            self._ccs_sent = True

    # -------------------------------------------------------------- ServerHello

    def _on_server_hello(self, raw: bytes) -> None:
        sh = parse_server_hello(raw)
        if X.SUPPORTED_VERSIONS not in sh.extensions:
            if sh.random[-8:-1] == DOWNGRADE_TLS12[:-1]:
                raise TLSAlert(AlertDescription.illegal_parameter, "downgrade sentinel")
            raise TLSAlert(AlertDescription.protocol_version, "server does not speak TLS 1.3")
        rv = Reader(sh.extensions[X.SUPPORTED_VERSIONS])
        if rv.u16() != TLS13 or sh.legacy_version != 0x0303:
            raise TLSAlert(AlertDescription.illegal_parameter, "bad selected version")
        rv.expect_end("supported_versions")
        if sh.session_id != self._session_id:
            raise TLSAlert(AlertDescription.illegal_parameter, "session id not echoed")
        if sh.cipher_suite not in self._suites or sh.compression != 0:
            raise TLSAlert(AlertDescription.illegal_parameter, "suite or compression not offered")
        suite = SUITES[sh.cipher_suite]
        if sh.random == HRR_RANDOM:
            self._on_hello_retry(sh, suite, raw)
            return
        for t in sh.extensions:
            if t not in _SH_ALLOWED:
                raise TLSAlert(AlertDescription.unsupported_extension, f"extension {t} in SH")
        if self._hrr_suite is not None and suite is not self._hrr_suite:
            raise TLSAlert(AlertDescription.illegal_parameter, "suite changed after retry")
        if X.KEY_SHARE not in sh.extensions:
            raise TLSAlert(AlertDescription.missing_extension, "psk_ke is not supported")
        rk = Reader(sh.extensions[X.KEY_SHARE])
        group = rk.u16()
        public = rk.vec16(min_len=1)
        rk.expect_end("key_share")
        if group not in self._shares:
            raise TLSAlert(AlertDescription.illegal_parameter, "key share for a group not sent")
        psk = None
        if X.PRE_SHARED_KEY in sh.extensions:
            rp = Reader(sh.extensions[X.PRE_SHARED_KEY])
            index = rp.u16()
            rp.expect_end("pre_shared_key")
            session = self._session
            if session is None or index != 0:
                raise TLSAlert(AlertDescription.illegal_parameter, "PSK not offered")
            if SUITES[session.cipher_suite].hash_name != suite.hash_name:
                raise TLSAlert(AlertDescription.illegal_parameter, "PSK hash mismatch")
            psk = session.psk
            self.resumed = True
        self.suite = suite
        self.group = group
        ks = KeySchedule(suite, psk)
        self._ks = ks
        self.transcript += raw
        shared = self._shares[group].exchange(public)
        c_hs, s_hs = ks.enter_handshake(shared, bytes(self.transcript))
        self._c_hs, self._s_hs = c_hs, s_hs
        self._set_read(Protection13(suite, s_hs))
        self._send_compat_ccs()
        self._set_write(Protection13(suite, c_hs))
        self._to(ClientState.WAIT_EE)

    def _on_hello_retry(self, sh: ServerHello, suite: CipherSuite, raw: bytes) -> None:
        if self._hrr_suite is not None:
            raise TLSAlert(AlertDescription.unexpected_message, "second HelloRetryRequest")
        for t in sh.extensions:
            if t not in _HRR_ALLOWED:
                raise TLSAlert(AlertDescription.unsupported_extension, f"extension {t} in HRR")
        changed = False
        if X.KEY_SHARE in sh.extensions:
            rk = Reader(sh.extensions[X.KEY_SHARE])
            group = rk.u16()
            rk.expect_end("key_share")
            if group not in self.config.groups or group in self._shares:
                raise TLSAlert(AlertDescription.illegal_parameter, "bad group in retry")
            self._shares = {group: KeyShare(group, self._random)}
            changed = True
        if X.COOKIE in sh.extensions:
            rc = Reader(sh.extensions[X.COOKIE])
            self._cookie = rc.vec16(min_len=1)
            rc.expect_end("cookie")
            changed = True
        if not changed:
            raise TLSAlert(AlertDescription.illegal_parameter, "retry would change nothing")
        self._hrr_suite = suite
        self.transcript = bytearray(handshake(MESSAGE_HASH, suite.hash(self._ch1).digest()))
        self.transcript += raw
        if (
            self._session is not None
            and SUITES[self._session.cipher_suite].hash_name != suite.hash_name
        ):
            self._session = None
        self._require_aligned()
        self._send_compat_ccs()
        self._send_client_hello()

    # --------------------------------------------------------- encrypted flight

    def _on_encrypted_extensions(self, raw: bytes) -> None:
        r = Reader(raw, 4)
        exts, _ = X.parse_extensions(r)
        r.expect_end("EncryptedExtensions")
        allowed = {X.SERVER_NAME, X.SUPPORTED_GROUPS, X.ALPN, X.RECORD_SIZE_LIMIT}
        for t in exts:
            if t not in allowed:
                raise TLSAlert(AlertDescription.unsupported_extension, f"extension {t} in EE")
        if X.ALPN in exts:
            protocols = X.parse_alpn(exts[X.ALPN])
            names = [p.decode("ascii", "replace") for p in protocols]
            if len(names) != 1 or names[0] not in self.config.alpn_protocols:
                raise TLSAlert(AlertDescription.illegal_parameter, "ALPN not offered")
            self.alpn = names[0]
        if X.RECORD_SIZE_LIMIT in exts:
            value = X.parse_record_size_limit(exts[X.RECORD_SIZE_LIMIT])
            self._send_limit = min(MAX_PLAINTEXT, value - 1)
        self.transcript += raw
        self._to(ClientState.WAIT_FINISHED if self.resumed else ClientState.WAIT_CERT_CR)

    def _on_certificate_request(self, raw: bytes) -> None:
        r = Reader(raw, 4)
        self._cert_request_context = r.vec8()
        X.parse_extensions(r)
        r.expect_end("CertificateRequest")
        self.transcript += raw
        self._to(ClientState.WAIT_CERT)

    def _on_certificate(self, raw: bytes) -> None:
        ders = parse_certificate_list(raw[4:], tls13=True)
        if not ders:
            raise TLSAlert(AlertDescription.decode_error, "empty server certificate")
        cfg = self.config
        if cfg.verify_peer:
            leaf = verify_chain(ders, cfg.trust_store, self.server_name, self.now or 0.0)
        else:
            try:
                leaf = x509.load_der_x509_certificate(ders[0])
            except ValueError:
                raise TLSAlert(AlertDescription.bad_certificate, "unparsable") from None
        try:
            self._peer_public_key = leaf.public_key()
        except (ValueError, TypeError):
            raise TLSAlert(AlertDescription.unsupported_certificate, "unknown key") from None
        self._peer_certs = ders
        self.transcript += raw
        self._to(ClientState.WAIT_CV)

    def _on_certificate_verify(self, raw: bytes) -> None:
        r = Reader(raw, 4)
        scheme = r.u16()
        signature = r.vec16(min_len=1)
        r.expect_end("CertificateVerify")
        if scheme not in TLS13_SCHEMES or scheme not in self.config.signature_schemes:
            raise TLSAlert(AlertDescription.illegal_parameter, "signature scheme not offered")
        ks = self._ks
        assert ks is not None
        signed = CV_SERVER_CONTEXT + ks.transcript_hash(bytes(self.transcript))
        verify(self._peer_public_key, scheme, signature, signed, tls13=True)
        self.signature_scheme = scheme
        self.transcript += raw
        self._to(ClientState.WAIT_FINISHED)

    def _on_finished(self, raw: bytes) -> None:
        ks = self._ks
        suite = self.suite
        assert ks is not None and suite is not None
        expected = ks.finished_mac(self._s_hs, ks.transcript_hash(bytes(self.transcript)))
        if len(raw) - 4 != len(expected):
            raise TLSAlert(AlertDescription.decode_error, "bad Finished length")
        if not hmac.compare_digest(raw[4:], expected):
            raise TLSAlert(AlertDescription.decrypt_error, "server Finished mismatch")
        self.transcript += raw
        c_ap, s_ap = ks.enter_application(bytes(self.transcript))
        self._set_read(Protection13(suite, s_ap))
        if self._cert_request_context is not None:
            self._send_handshake(CERTIFICATE, vec8(self._cert_request_context) + vec24(b""))
        mac = ks.finished_mac(self._c_hs, ks.transcript_hash(bytes(self.transcript)))
        self._send_handshake(FINISHED, mac)
        self._set_write(Protection13(suite, c_ap))
        self._res_master = ks.resumption_master(bytes(self.transcript))
        self._ccs_ok = False
        self._to(ClientState.CONNECTED)
        self._complete(self._peer_certs)

    # ------------------------------------------------------------ post-handshake

    def _on_new_session_ticket(self, raw: bytes) -> None:
        r = Reader(raw, 4)
        lifetime = r.u32()
        age_add = r.u32()
        nonce = r.vec8()
        ticket = r.vec16(min_len=1)
        exts, _ = X.parse_extensions(r)
        r.expect_end("NewSessionTicket")
        if lifetime > 604800:
            raise TLSAlert(AlertDescription.illegal_parameter, "ticket lifetime over 7 days")
        if lifetime == 0:
            return
        ks = self._ks
        assert ks is not None and self.suite is not None
        max_early = 0
        if X.EARLY_DATA in exts:
            re_ = Reader(exts[X.EARLY_DATA])
            max_early = re_.u32()
        self._events.append(
            SessionTicketReceived(
                SessionTicket(
                    ticket=ticket,
                    psk=ks.ticket_psk(self._res_master, nonce),
                    cipher_suite=self.suite.code,
                    lifetime=lifetime,
                    age_add=age_add,
                    received_at=self.now or 0.0,
                    server_name=self.server_name,
                    alpn=self.alpn,
                    max_early_data=max_early,
                )
            )
        )
