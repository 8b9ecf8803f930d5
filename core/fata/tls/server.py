"""The server state machine: TLS 1.3 (RFC 8446) with HelloRetryRequest, PSK resumption and
session tickets, falling back to TLS 1.2 (``fata.tls.tls12``) for clients without 1.3.

States (``fata.tls.states.ServerState``, moves in ``SERVER_TRANSITIONS``): ``WAIT_CH`` ->
(``WAIT_CH2`` after a HelloRetryRequest) -> ``WAIT_FINISHED`` -> ``CONNECTED``; TLS 1.2 goes
through the ``TLS12_*`` states of the mixin.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fata.tls import extensions as X
from fata.tls.alerts import AlertDescription, TLSAlert
from fata.tls.certs import CertifiedKey
from fata.tls.codec import Reader, u16, u32, vec8, vec16, vec24
from fata.tls.config import TLSConfig
from fata.tls.connection import TLSConnection
from fata.tls.groups import KeyShare, is_obsolete
from fata.tls.keyschedule import HRR_RANDOM, KeySchedule
from fata.tls.messages import (
    CERTIFICATE,
    CERTIFICATE_VERIFY,
    CLIENT_HELLO,
    ENCRYPTED_EXTENSIONS,
    FINISHED,
    KEY_UPDATE,
    MESSAGE_HASH,
    NEW_SESSION_TICKET,
    SERVER_HELLO,
    ClientHello,
    handshake,
    parse_client_hello,
)
from fata.tls.record import MAX_PLAINTEXT, Protection13
from fata.tls.sigalgs import schemes_for_key, sign
from fata.tls.states import SERVER_TRANSITIONS, ServerState
from fata.tls.suites import FALLBACK_SCSV, SUITES, TLS12, TLS13, CipherSuite
from fata.tls.tls12 import TLS12ServerMixin

_TICKET_AAD = b"fata tls13 ticket v1"
CV_SERVER_CONTEXT = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00"


def select_certificate(
    config: TLSConfig,
    server_name: str | None,
    client_schemes: list[int],
    tls13: bool,
    families: tuple[str, ...] = ("rsa", "ecdsa", "ed25519"),
) -> tuple[CertifiedKey, int] | None:
    """The certificate for this SNI (else any) and the scheme to sign with."""
    certs = config.certificates
    named = [c for c in certs if server_name and c.matches(server_name)]
    for ck in named + [c for c in certs if c not in named]:
        if ck.family not in families:
            continue
        for scheme in schemes_for_key(ck.key, tls13):
            if scheme in client_schemes and scheme in config.signature_schemes:
                return ck, scheme
    return None


_MAY_CHANGE_AFTER_RETRY = frozenset(
    (X.KEY_SHARE, X.COOKIE, X.EARLY_DATA, X.PRE_SHARED_KEY, X.PADDING)
)


def _retry_view(ch: ClientHello) -> tuple:
    """What must be identical between a ClientHello and its retry."""
    exts = [
        (t, None if t in _MAY_CHANGE_AFTER_RETRY else ch.extensions[t])
        for t in ch.order
        if t not in (X.EARLY_DATA, X.COOKIE, X.PADDING, X.PRE_SHARED_KEY)
    ]
    return (
        ch.legacy_version,
        ch.random,
        ch.session_id,
        ch.cipher_suites,
        ch.compression_methods,
        exts,
    )


class TLSServer(TLS12ServerMixin, TLSConnection):
    """A server-side TLS connection; feed it the client's bytes."""

    is_client = False
    state: ServerState
    _transitions = SERVER_TRANSITIONS

    def __init__(self, config: TLSConfig, now: float | None = None) -> None:
        super().__init__(config, now)
        if not config.certificates:
            raise ValueError("a TLS server needs at least one certificate")
        self.state = ServerState.WAIT_CH
        self._ch1: ClientHello | None = None
        self._hrr_group: int | None = None
        self._cookie = b""
        self._compat_ccs_sent = False
        self._ks: KeySchedule | None = None
        self._c_hs = b""
        self._c_ap = b""

    # ------------------------------------------------------------------ dispatch

    def _handle_handshake(self, msg_type: int, raw: bytes) -> None:
        state = self.state
        if state is ServerState.WAIT_CH or state is ServerState.WAIT_CH2:
            if msg_type != CLIENT_HELLO:
                raise TLSAlert(AlertDescription.unexpected_message, "expected ClientHello")
            self._on_client_hello(raw)
        elif state is ServerState.WAIT_FINISHED:
            if msg_type != FINISHED:
                raise TLSAlert(AlertDescription.unexpected_message, "expected Finished")
            self._on_finished(raw)
        elif state is ServerState.CONNECTED and self.version == TLS13:
            if msg_type != KEY_UPDATE:
                raise TLSAlert(AlertDescription.unexpected_message, "unexpected post-handshake")
            self._handle_key_update(raw)
        else:
            self._tls12_handshake(msg_type, raw)

    # ------------------------------------------------------------- ClientHello

    def _select_version(self, ch: ClientHello) -> int:
        cfg = self.config
        if ch.legacy_version <= 0x0300:
            # RFC 8446 D.5: SSL 3.0 (or older) hellos are refused even with supported_versions.
            raise TLSAlert(AlertDescription.protocol_version, "SSL 3.0 or older")
        if ch.versions:
            if TLS13 in ch.versions and cfg.max_version >= TLS13:
                return TLS13
            if TLS12 in ch.versions and cfg.min_version <= TLS12:
                return TLS12
        elif ch.legacy_version >= TLS12 and cfg.min_version <= TLS12:
            return TLS12
        raise TLSAlert(AlertDescription.protocol_version, "no common protocol version")

    def _on_client_hello(self, raw: bytes) -> None:
        ch = parse_client_hello(raw)
        if self.state is ServerState.WAIT_CH2:
            self._on_client_hello2(ch)
            return
        version = self._select_version(ch)
        if FALLBACK_SCSV in ch.cipher_suites and version < self.config.max_version:
            raise TLSAlert(AlertDescription.inappropriate_fallback, "fallback SCSV")
        if version == TLS12:
            self._tls12_client_hello(ch)
            return
        self.version = TLS13
        self._ccs_ok = True
        if ch.compression_methods != b"\x00":
            raise TLSAlert(AlertDescription.illegal_parameter, "compression offered in TLS 1.3")
        self.server_name = ch.server_name
        suite = next(
            (
                SUITES[c]
                for c in self.config.cipher_suites
                if c in ch.cipher_suites and SUITES[c].version == TLS13
            ),
            None,
        )
        if suite is None:
            raise TLSAlert(AlertDescription.handshake_failure, "no common cipher suite")
        if ch.key_shares is None or not ch.groups:
            raise TLSAlert(AlertDescription.missing_extension, "key_share/supported_groups needed")
        if ch.signature_algorithms is None and not ch.psk_identities:
            raise TLSAlert(AlertDescription.missing_extension, "signature_algorithms needed")
        offered = dict(ch.key_shares)
        for group in offered:
            if group not in ch.groups:
                raise TLSAlert(AlertDescription.illegal_parameter, "key share not in groups")
        group = next((g for g in self.config.groups if g in offered), None)
        if group is None:
            retry = next((g for g in self.config.groups if g in ch.groups), None)
            if retry is None:
                if all(is_obsolete(g) for g in ch.groups):
                    # RFC 8446 B.3.1.4: TLS 1.2-era curves must not be offered for 1.3.  We
                    # ignore them beside a usable group (as deployed servers do) and say
                    # illegal_parameter only when they are all the client offers.
                    raise TLSAlert(AlertDescription.illegal_parameter, "only obsolete groups")
                raise TLSAlert(AlertDescription.handshake_failure, "no common group")
            self._send_hello_retry(ch, suite, retry)
            return
        self._negotiate(ch, suite, group, offered[group])

    def _send_hello_retry(self, ch: ClientHello, suite: CipherSuite, group: int) -> None:
        self.suite = suite
        self._ch1 = ch
        self._hrr_group = group
        ch1_hash = suite.hash(ch.raw).digest()
        mac = hmac.digest(self.config.cookie_key, ch1_hash + u16(suite.code) + u16(group), "sha256")
        self._cookie = ch1_hash + mac
        self.transcript = bytearray(handshake(MESSAGE_HASH, ch1_hash))
        exts = (
            X.ext(X.SUPPORTED_VERSIONS, u16(TLS13))
            + X.ext(X.KEY_SHARE, u16(group))
            + X.ext(X.COOKIE, vec16(self._cookie))
        )
        body = (
            u16(TLS12) + HRR_RANDOM + vec8(ch.session_id) + u16(suite.code) + b"\x00" + vec16(exts)
        )
        self._send_handshake(SERVER_HELLO, body)
        if ch.session_id:
            self._send_ccs()
            self._compat_ccs_sent = True
        if ch.early_data:
            # RFC 8446 4.2.10: after a retry, skip the client's 0-RTT records unread.
            self._early_skip = self.config.max_early_data_skip
        self._to(ServerState.WAIT_CH2)
        self._require_aligned()

    def _on_client_hello2(self, ch: ClientHello) -> None:
        ch1 = self._ch1
        assert ch1 is not None and self.suite is not None
        if TLS13 not in ch.versions:
            raise TLSAlert(AlertDescription.illegal_parameter, "second ClientHello not TLS 1.3")
        if _retry_view(ch) != _retry_view(ch1):
            # RFC 8446 4.1.2: only key_share, cookie, early_data, pre_shared_key and padding
            # may differ between the two hellos.
            raise TLSAlert(AlertDescription.illegal_parameter, "second ClientHello changed")
        if ch.cookie is None:
            raise TLSAlert(AlertDescription.missing_extension, "cookie missing")
        if not hmac.compare_digest(ch.cookie, self._cookie):
            raise TLSAlert(AlertDescription.illegal_parameter, "bad cookie")
        if ch.early_data:
            raise TLSAlert(AlertDescription.illegal_parameter, "early_data after retry")
        self._early_skip = 0  # 0-RTT records may precede this hello, never follow it
        if not ch.key_shares or len(ch.key_shares) != 1 or ch.key_shares[0][0] != self._hrr_group:
            raise TLSAlert(AlertDescription.illegal_parameter, "wrong key share after retry")
        if ch.signature_algorithms is None and not ch.psk_identities:
            raise TLSAlert(AlertDescription.missing_extension, "signature_algorithms needed")
        self._negotiate(ch, self.suite, ch.key_shares[0][0], ch.key_shares[0][1])

    # ------------------------------------------------------------ negotiation

    def _choose_psk(self, ch: ClientHello, suite: CipherSuite) -> tuple[int, bytes] | None:
        if not ch.psk_identities:
            return None
        if ch.psk_modes is None:
            raise TLSAlert(AlertDescription.missing_extension, "psk_key_exchange_modes missing")
        if X.PSK_DHE_KE not in ch.psk_modes:
            return None
        aead = AESGCM(self.config.ticket_key)
        now_ms = int((self.now or 0.0) * 1000)
        for index, (identity, _obfuscated_age) in enumerate(ch.psk_identities):
            if len(identity) < 12 + 16:
                continue
            try:
                state = aead.decrypt(identity[:12], identity[12:], _TICKET_AAD)
            except Exception:
                continue
            r = Reader(state)
            code = r.u16()
            created = int.from_bytes(r.raw(8), "big")
            r.u32()
            lifetime = r.u32()
            psk = r.vec8()
            ticket_suite = SUITES.get(code)
            if ticket_suite is None or ticket_suite.hash_name != suite.hash_name:
                continue
            if not 0 <= now_ms - created <= lifetime * 1000:
                continue
            return index, psk
        return None

    def _negotiate(
        self, ch: ClientHello, suite: CipherSuite, group: int, peer_share: bytes
    ) -> None:
        cfg = self.config
        self.suite = suite
        self.group = group
        choice = self._choose_psk(ch, suite)
        ks = KeySchedule(suite, choice[1] if choice else None)
        self._ks = ks
        if choice is not None:
            index = choice[0]
            truncated = bytes(self.transcript) + ch.raw[: ch.binders_offset]
            expected = ks.finished_mac(ks.binder_key(), ks.transcript_hash(truncated))
            if not hmac.compare_digest(expected, ch.psk_binders[index]):
                raise TLSAlert(AlertDescription.decrypt_error, "PSK binder mismatch")
            self.resumed = True
            certified = None
        else:
            picked = select_certificate(cfg, ch.server_name, ch.signature_algorithms or [], True)
            if picked is None:
                raise TLSAlert(AlertDescription.handshake_failure, "no usable certificate")
            certified, self.signature_scheme = picked
        ee = b""
        if ch.alpn is not None and cfg.alpn_protocols:
            self.alpn = X.select_alpn(cfg.alpn_protocols, ch.alpn)
            ee += X.ext(X.ALPN, X.encode_alpn([self.alpn.encode()]))
        if ch.record_size_limit is not None:
            self._send_limit = min(MAX_PLAINTEXT, ch.record_size_limit - 1)
            limit = cfg.record_size_limit or MAX_PLAINTEXT + 1
            self._recv_plain_limit = min(MAX_PLAINTEXT, limit - 1)
            ee += X.ext(X.RECORD_SIZE_LIMIT, u16(limit))
        if (
            ch.server_name is not None
            and certified is not None
            and certified.matches(ch.server_name)
        ):
            ee += X.ext(X.SERVER_NAME)

        share = KeyShare(group, self._random)
        shared = share.exchange(peer_share)
        self.transcript += ch.raw
        sh_exts = X.ext(X.KEY_SHARE, u16(group) + vec16(share.public)) + X.ext(
            X.SUPPORTED_VERSIONS, u16(TLS13)
        )
        if choice is not None:
            sh_exts += X.ext(X.PRE_SHARED_KEY, u16(choice[0]))
        body = (
            u16(TLS12)
            + self._random(32)
            + vec8(ch.session_id)
            + u16(suite.code)
            + b"\x00"
            + vec16(sh_exts)
        )
        self._send_handshake(SERVER_HELLO, body)
        if ch.session_id and not self._compat_ccs_sent:
            self._send_ccs()
            self._compat_ccs_sent = True
        c_hs, s_hs = ks.enter_handshake(shared, bytes(self.transcript))
        self._c_hs = c_hs
        self._set_write(Protection13(suite, s_hs))
        self._set_read(Protection13(suite, c_hs))
        if ch.early_data:
            self._early_skip = cfg.max_early_data_skip
        self._send_handshake(ENCRYPTED_EXTENSIONS, vec16(ee))
        if certified is not None:
            entries = b"".join(vec24(der) + b"\x00\x00" for der in certified.der_chain)
            self._send_handshake(CERTIFICATE, b"\x00" + vec24(entries))
            signed = CV_SERVER_CONTEXT + ks.transcript_hash(bytes(self.transcript))
            assert self.signature_scheme is not None
            signature = sign(certified.key, self.signature_scheme, signed)
            self._send_handshake(CERTIFICATE_VERIFY, u16(self.signature_scheme) + vec16(signature))
        verify = ks.finished_mac(s_hs, ks.transcript_hash(bytes(self.transcript)))
        self._send_handshake(FINISHED, verify)
        c_ap, s_ap = ks.enter_application(bytes(self.transcript))
        self._c_ap = c_ap
        self._set_write(Protection13(suite, s_ap))
        self._to(ServerState.WAIT_FINISHED)

    def _on_finished(self, raw: bytes) -> None:
        ks = self._ks
        assert ks is not None and self.suite is not None
        expected = ks.finished_mac(self._c_hs, ks.transcript_hash(bytes(self.transcript)))
        if len(raw) - 4 != len(expected):
            raise TLSAlert(AlertDescription.decode_error, "bad Finished length")
        if not hmac.compare_digest(raw[4:], expected):
            raise TLSAlert(AlertDescription.decrypt_error, "client Finished mismatch")
        self.transcript += raw
        self._set_read(Protection13(self.suite, self._c_ap))
        self._ccs_ok = False
        self._early_skip = 0
        self._to(ServerState.CONNECTED)
        if self.config.session_tickets:
            self._send_tickets(ks.resumption_master(bytes(self.transcript)))
        self._complete()

    def _send_tickets(self, resumption_master: bytes) -> None:
        ks = self._ks
        cfg = self.config
        assert ks is not None and self.suite is not None
        aead = AESGCM(cfg.ticket_key)
        created = int((self.now or 0.0) * 1000)
        for i in range(cfg.session_tickets):
            nonce = bytes((i,))
            psk = ks.ticket_psk(resumption_master, nonce)
            age_add = int.from_bytes(self._random(4), "big")
            state = (
                u16(self.suite.code)
                + created.to_bytes(8, "big")
                + u32(age_add)
                + u32(cfg.ticket_lifetime)
                + vec8(psk)
                + vec8((self.alpn or "").encode())
            )
            n12 = self._random(12)
            ticket = n12 + aead.encrypt(n12, state, _TICKET_AAD)
            body = (
                u32(cfg.ticket_lifetime) + u32(age_add) + vec8(nonce) + vec16(ticket) + vec16(b"")
            )
            self._send_handshake(NEW_SESSION_TICKET, body, transcript=False)
        self._flush_handshake()
