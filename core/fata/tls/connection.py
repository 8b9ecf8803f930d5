"""The common engine of client and server: records in and out, handshake reassembly,
alerts, application data and KeyUpdate.  Subclasses supply the handshake state machines.

Sans-IO, like h11: ``receive_data(bytes)`` returns events, ``data_to_send()`` returns the
bytes to write.  Nothing here raises on peer input: a violation becomes an alert sent to the
peer plus a ``ConnectionClosed`` event.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fata.tls.alerts import AlertDescription, AlertLevel, TLSAlert, TLSUsageError
from fata.tls.config import TLSConfig
from fata.tls.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    KeyUpdateReceived,
)
from fata.tls.groups import GROUP_NAMES
from fata.tls.keyschedule import hkdf_expand_label
from fata.tls.messages import KEY_UPDATE, handshake
from fata.tls.record import (
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    MAX_CIPHERTEXT_12,
    MAX_CIPHERTEXT_13,
    MAX_PLAINTEXT,
    Protection,
    Protection13,
)
from fata.tls.sigalgs import SCHEME_NAMES
from fata.tls.states import ClientState, ServerState
from fata.tls.suites import TLS12, TLS13, VERSION_NAMES, CipherSuite

# ``encrypt_into`` (in-place sealing) arrived in a recent ``cryptography``; older releases
# take the per-record path.
HAVE_ENCRYPT_INTO = hasattr(AESGCM, "encrypt_into")
_VALID_TYPES = frozenset((CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA))


class TLSConnection:
    """One TLS connection's state, independent of how bytes travel."""

    is_client = False
    state: ServerState | ClientState
    """Where the handshake is; subclasses set the initial state and move with ``_to``."""
    _transitions: Mapping[ServerState | ClientState, frozenset[ServerState | ClientState]]

    def __init__(self, config: TLSConfig, now: float | None = None) -> None:
        self.config = config
        self.now = now
        self._random = config.random
        self._inbuf = b""
        self._out: list[bytes | bytearray] = []
        self._events: list[Event] = []
        self._read: Protection | None = None
        self._write: Protection | None = None
        self._hs_buf = bytearray()
        self._hs_out = bytearray()
        self.transcript = bytearray()
        self.version: int | None = None
        self.suite: CipherSuite | None = None
        self.closed = False
        self.handshake_complete = False
        self.alpn: str | None = None
        self.server_name: str | None = None
        self.resumed = False
        self.group: int | None = None
        self.signature_scheme: int | None = None
        self.error: TLSAlert | None = None
        self._send_limit = MAX_PLAINTEXT
        self._recv_plain_limit = MAX_PLAINTEXT
        self._record_version = b"\x03\x03"
        self._ccs_ok = False  # TLS 1.3 compatibility CCS may arrive now
        self._early_skip = 0  # bytes of rejected 0-RTT data we may still discard
        self._peer_closed = False
        self._sent_close = False
        self._key_update_pending = False

    # ----------------------------------------------------------------- public API

    def receive_data(self, data: bytes, now: float | None = None) -> list[Event]:
        """Feed bytes from the peer (``b""`` for EOF); return the resulting events."""
        if now is not None:
            self.now = now
        if self.closed:
            return []
        if not data:
            self.closed = True
            self._events.append(
                ConnectionClosed(None, True, truncated=not self._peer_closed, reason="EOF")
            )
        else:
            self._inbuf = self._inbuf + data if self._inbuf else bytes(data)
            try:
                self._process_records()
            except TLSAlert as alert:
                self._fail(alert)
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                self._fail(TLSAlert(AlertDescription.internal_error, why))
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes | bytearray:
        """Bytes to write to the transport now (possibly empty).  The engine never touches
        the returned buffer again (a bytearray on the bulk path, to spare a copy)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def send_application_data(self, data: bytes) -> None:
        """Encrypt ``data`` into records (16 KiB each, or the peer's record_size_limit)."""
        if not self.handshake_complete or self.closed or self._sent_close:
            raise TLSUsageError("connection not open for application data")
        write = self._write
        assert write is not None
        limit = self._send_limit
        pad_to = self.config.pad_to if self.version == TLS13 else 0
        out = self._out
        n = len(data)
        if not pad_to:
            if isinstance(write, Protection13) and n > 512 and HAVE_ENCRYPT_INTO:
                out.append(write.seal_batch(data, limit))
                return
            if n <= limit:
                out.append(write.seal(CT_APPLICATION_DATA, data))
                return
        if pad_to and pad_to <= limit + 1:
            # Records whose padded inner plaintext is an exact multiple of pad_to.
            limit = ((limit + 1) // pad_to) * pad_to - 1
        mv = memoryview(data)
        for i in range(0, n, limit):
            chunk = mv[i : i + limit]
            out.append(write.seal(CT_APPLICATION_DATA, chunk, self._padding(len(chunk))))

    def close(self) -> None:
        """Send close_notify; the connection accepts no more application data to send."""
        if self._sent_close or (self.closed and self._write is None):
            return
        self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
        self._sent_close = True
        if self._peer_closed:
            self.closed = True

    def key_update(self, request_peer_update: bool = True) -> None:
        """TLS 1.3: switch our sending keys (and ask the peer to switch theirs)."""
        if self.version != TLS13 or not self.handshake_complete or self.closed:
            raise TLSUsageError("KeyUpdate needs an open TLS 1.3 connection")
        self._send_key_update(request_peer_update)

    # -------------------------------------------------------------- record input

    def _process_records(self) -> None:
        data = self._inbuf
        n = len(data)
        pos = 0
        mv = memoryview(data)
        while not self.closed and n - pos >= 5:
            ct = data[pos]
            length = (data[pos + 3] << 8) | data[pos + 4]
            if ct not in _VALID_TYPES or data[pos + 1] != 3:
                raise TLSAlert(AlertDescription.unexpected_message, f"bad record type {ct}")
            if self._read is None:
                if length > MAX_PLAINTEXT:
                    raise TLSAlert(AlertDescription.record_overflow, "plaintext record too big")
            elif length > (MAX_CIPHERTEXT_13 if self.version == TLS13 else MAX_CIPHERTEXT_12):
                raise TLSAlert(AlertDescription.record_overflow, "ciphertext record too big")
            end = pos + 5 + length
            if end > n:
                break
            header = data[pos : pos + 5]
            payload = mv[pos + 5 : end]
            pos = end
            self._handle_record(ct, header, payload)
        self._inbuf = data[pos:] if pos < n else b""

    def _handle_record(self, ct: int, header: bytes, payload: memoryview) -> None:
        tls13 = self.version == TLS13
        if ct == CT_CHANGE_CIPHER_SPEC:
            if len(payload) != 1 or payload[0] != 1:
                raise TLSAlert(AlertDescription.unexpected_message, "bad ChangeCipherSpec")
            if self.version == TLS12:
                self._on_change_cipher_spec()
                return
            if not self._ccs_ok or self._hs_buf:
                raise TLSAlert(AlertDescription.unexpected_message, "unexpected ChangeCipherSpec")
            self._ccs_ok = False  # one compatibility CCS at most (RFC 8446 5)
            return
        if self._read is not None and (ct == CT_APPLICATION_DATA or not tls13):
            try:
                ct, data = self._read.open(header, payload)
            except TLSAlert:
                if self._early_skip >= len(payload):
                    self._early_skip -= len(payload)  # rejected 0-RTT data: skip it
                    return
                raise
            self._early_skip = 0
            if len(data) > self._recv_plain_limit:
                raise TLSAlert(AlertDescription.record_overflow, "plaintext too big")
            if tls13 and ct == CT_CHANGE_CIPHER_SPEC:
                raise TLSAlert(AlertDescription.unexpected_message, "protected ChangeCipherSpec")
        else:
            if self._read is not None and ct != CT_ALERT:
                raise TLSAlert(AlertDescription.unexpected_message, "unprotected record")
            if ct == CT_APPLICATION_DATA and self._early_skip >= len(payload) and tls13:
                self._early_skip -= len(payload)  # 0-RTT data after HelloRetryRequest
                return
            if ct == CT_APPLICATION_DATA:
                raise TLSAlert(AlertDescription.unexpected_message, "data before handshake")
            if ct == CT_ALERT and self._read is not None and self.handshake_complete:
                raise TLSAlert(AlertDescription.unexpected_message, "unprotected alert")
            data = bytes(payload)
        if self._hs_buf and ct != CT_HANDSHAKE:
            raise TLSAlert(AlertDescription.unexpected_message, "record inside a handshake message")
        if ct == CT_APPLICATION_DATA:
            if not self.handshake_complete:
                raise TLSAlert(AlertDescription.unexpected_message, "data before Finished")
            if self._peer_closed:
                raise TLSAlert(AlertDescription.unexpected_message, "data after close_notify")
            if data:
                self._events.append(ApplicationData(data))
        elif ct == CT_HANDSHAKE:
            if not data:
                raise TLSAlert(AlertDescription.unexpected_message, "empty handshake record")
            self._hs_buf += data
            self._process_handshake()
        else:
            self._handle_alert(data)

    def _process_handshake(self) -> None:
        buf = self._hs_buf
        limit = self.config.max_handshake_message
        while len(buf) >= 4 and not self.closed:
            mlen = (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if mlen > limit:
                raise TLSAlert(AlertDescription.decode_error, "handshake message too large")
            if len(buf) < 4 + mlen:
                break
            raw = bytes(buf[: 4 + mlen])
            del buf[: 4 + mlen]
            self._handle_handshake(raw[0], raw)
            self._flush_handshake()

    def _require_aligned(self) -> None:
        """Called at every key change: no handshake bytes may straddle it (RFC 8446 5.1)."""
        if self._hs_buf:
            raise TLSAlert(AlertDescription.unexpected_message, "handshake data across key change")

    def _handle_alert(self, data: bytes) -> None:
        if not data:
            raise TLSAlert(AlertDescription.unexpected_message, "empty alert record")
        if len(data) != 2:
            raise TLSAlert(AlertDescription.decode_error, "bad alert length")
        level, desc_value = data[0], data[1]
        desc = AlertDescription.from_int(desc_value)
        if level not in (1, 2):
            raise TLSAlert(AlertDescription.illegal_parameter, "bad alert level")
        if desc == AlertDescription.close_notify:
            self._peer_closed = True
            self._events.append(ConnectionClosed(None, True, reason="close_notify"))
            if not self._sent_close:
                self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
                self._sent_close = True
            self.closed = True
            return
        if desc == AlertDescription.user_canceled or (
            self.version == TLS12 and level == AlertLevel.WARNING
        ):
            self._events.append(AlertReceived(level, desc))
            return
        self._events.append(AlertReceived(level, desc))
        self._events.append(ConnectionClosed(desc, True, reason="fatal alert received"))
        self.closed = True

    # ------------------------------------------------------------- record output

    def _padding(self, length: int) -> int:
        pad_to = self.config.pad_to
        if not pad_to or self.version != TLS13 or self._write is None:
            return 0
        pad = (-(length + 1)) % pad_to
        return min(pad, self._send_limit - length)

    def _send_record(self, ct: int, data: bytes) -> None:
        limit = self._send_limit
        write = self._write
        for i in range(0, max(len(data), 1), limit):
            chunk = data[i : i + limit]
            if write is None:
                self._out.append(
                    bytes((ct,)) + self._record_version + len(chunk).to_bytes(2, "big") + chunk
                )
            else:
                self._out.append(write.seal(ct, chunk, self._padding(len(chunk))))

    def _send_alert(self, level: int, desc: int) -> None:
        self._flush_handshake()
        self._send_record(CT_ALERT, bytes((level, desc)))

    def _send_ccs(self) -> None:
        self._flush_handshake()
        self._out.append(b"\x14\x03\x03\x00\x01\x01")

    def _send_handshake(self, msg_type: int, body: bytes, transcript: bool = True) -> bytes:
        raw = handshake(msg_type, body)
        if transcript:
            self.transcript += raw
        self._hs_out += raw
        return raw

    def _flush_handshake(self) -> None:
        if self._hs_out:
            data = bytes(self._hs_out)
            self._hs_out.clear()
            self._send_record(CT_HANDSHAKE, data)

    def _set_write(self, protection: Protection | None) -> None:
        self._flush_handshake()
        self._write = protection

    def _set_read(self, protection: Protection | None) -> None:
        self._require_aligned()
        self._read = protection

    def _fail(self, alert: TLSAlert) -> None:
        if self.closed:
            return
        self.error = alert
        self._hs_out.clear()
        try:
            self._send_alert(AlertLevel.FATAL, alert.description)
        except Exception:
            pass
        self.closed = True
        self._events.append(ConnectionClosed(alert.description, False, reason=alert.reason))

    # ------------------------------------------------------ TLS 1.3 post-handshake

    def _send_key_update(self, request: bool) -> None:
        assert isinstance(self._write, Protection13)
        self._send_handshake(KEY_UPDATE, bytes((1 if request else 0,)), transcript=False)
        self._flush_handshake()
        suite = self._write.suite
        nxt = hkdf_expand_label(
            suite.hash_name, self._write.secret, b"traffic upd", b"", suite.hash_len
        )
        self._write = Protection13(suite, nxt)

    def _handle_key_update(self, raw: bytes) -> None:
        if len(raw) != 5 or raw[4] not in (0, 1):
            raise TLSAlert(
                AlertDescription.decode_error
                if len(raw) != 5
                else AlertDescription.illegal_parameter,
                "bad KeyUpdate",
            )
        self._require_aligned()
        assert isinstance(self._read, Protection13)
        suite = self._read.suite
        nxt = hkdf_expand_label(
            suite.hash_name, self._read.secret, b"traffic upd", b"", suite.hash_len
        )
        self._read = Protection13(suite, nxt)
        requested = raw[4] == 1
        if requested and not self._sent_close:
            self._send_key_update(False)
        self._events.append(KeyUpdateReceived(requested))

    def _complete(self, peer_certificates: list[bytes] | None = None) -> None:
        self.handshake_complete = True
        assert self.suite is not None and self.version is not None
        self._events.append(
            HandshakeComplete(
                alpn=self.alpn,
                version=VERSION_NAMES[self.version],
                cipher=self.suite.name,
                resumed=self.resumed,
                group=GROUP_NAMES.get(self.group) if self.group is not None else None,
                signature_scheme=SCHEME_NAMES.get(self.signature_scheme)
                if self.signature_scheme is not None
                else None,
                server_name=self.server_name,
                peer_certificates=peer_certificates or [],
            )
        )

    # ------------------------------------------------------------ for subclasses

    def _to(self, state: ServerState | ClientState) -> None:
        """Move to ``state``; a move the transition table does not list is a bug of ours,
        so the connection ends with internal_error rather than carry on in a wrong state."""
        if state not in self._transitions[self.state]:
            raise TLSAlert(
                AlertDescription.internal_error,
                f"no transition {self.state.value} -> {state.value}",
            )
        self.state = state

    def _handle_handshake(self, msg_type: int, raw: bytes) -> None:
        raise NotImplementedError

    def _on_change_cipher_spec(self) -> None:
        raise TLSAlert(AlertDescription.unexpected_message, "unexpected ChangeCipherSpec")
