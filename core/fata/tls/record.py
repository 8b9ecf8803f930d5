"""Record protection: sealing and opening TLSCiphertext records for TLS 1.3 and 1.2.

One object per direction and key.  The AEAD object is created once per key (key setup is
the expensive part of AES-GCM in ``cryptography``), nonces are computed with one integer
XOR, and the 16 KiB records are sealed with a single ``encrypt`` call each.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag

from fata.tls.alerts import AlertDescription, TLSAlert
from fata.tls.keyschedule import traffic_keys
from fata.tls.suites import CipherSuite

CT_CHANGE_CIPHER_SPEC = 20
CT_ALERT = 21
CT_HANDSHAKE = 22
CT_APPLICATION_DATA = 23

MAX_PLAINTEXT = 1 << 14
MAX_CIPHERTEXT_13 = MAX_PLAINTEXT + 256
MAX_CIPHERTEXT_12 = MAX_PLAINTEXT + 2048
TAG_LEN = 16
SEQ_LIMIT = 1 << 64


def _bad_mac() -> TLSAlert:
    return TLSAlert(AlertDescription.bad_record_mac, "record failed authentication")


class Protection13:
    """TLS 1.3 record protection (RFC 8446 5.2-5.3) under one traffic secret."""

    __slots__ = ("aead", "iv", "secret", "seq", "suite", "tag")

    def __init__(self, suite: CipherSuite, secret: bytes) -> None:
        key, iv = traffic_keys(suite, secret)
        self.suite = suite
        self.tag = suite.tag_len
        self.secret = secret
        self.aead = suite.aead(key)
        self.iv = int.from_bytes(iv, "big")
        self.seq = 0

    def seal(self, content_type: int, data: bytes, pad: int = 0) -> bytes:
        inner = bytes(data) + bytes((content_type,))
        if pad:
            inner += bytes(pad)
        header = b"\x17\x03\x03" + (len(inner) + self.tag).to_bytes(2, "big")
        seq = self.seq
        if seq >= SEQ_LIMIT - 1:
            raise TLSAlert(AlertDescription.internal_error, "sequence number exhausted")
        self.seq = seq + 1
        nonce = (self.iv ^ seq).to_bytes(12, "big")
        return header + self.aead.encrypt(nonce, inner, header)

    def seal_batch(self, data: bytes | memoryview, limit: int) -> bytearray:
        """Application data as consecutive records in one buffer, encrypted in place.

        One copy of the plaintext, no per-record allocations: this is the bulk path.
        """
        n = len(data)
        count = -(-n // limit)
        if self.seq + count >= SEQ_LIMIT - 1:
            raise TLSAlert(AlertDescription.internal_error, "sequence number exhausted")
        tag = self.tag
        buf = bytearray(n + count * (5 + 1 + tag))
        mv = memoryview(buf)
        src = memoryview(data)
        encrypt_into = self.aead.encrypt_into
        iv = self.iv
        seq = self.seq
        off = pos = 0
        while pos < n:
            m = min(limit, n - pos)
            rec_len = m + 1 + tag
            header = b"\x17\x03\x03" + rec_len.to_bytes(2, "big")
            mv[off : off + 5] = header
            start = off + 5
            mv[start : start + m] = src[pos : pos + m]
            buf[start + m] = 23
            encrypt_into(
                (iv ^ seq).to_bytes(12, "big"),
                mv[start : start + m + 1],
                header,
                mv[start : start + rec_len],
            )
            seq += 1
            pos += m
            off = start + rec_len
        self.seq = seq
        return buf

    def open(self, header: bytes, payload: bytes) -> tuple[int, bytes]:
        seq = self.seq
        nonce = (self.iv ^ seq).to_bytes(12, "big")
        try:
            inner = self.aead.decrypt(nonce, payload, header)
        except InvalidTag:
            raise _bad_mac() from None
        self.seq = seq + 1
        if len(inner) > MAX_PLAINTEXT + 1:  # content + type + padding (RFC 8446 5.4)
            raise TLSAlert(AlertDescription.record_overflow, "inner plaintext too big")
        if inner and inner[-1]:
            return inner[-1], inner[:-1]
        stripped = inner.rstrip(b"\x00")
        if not stripped:
            raise TLSAlert(AlertDescription.unexpected_message, "record with no content type")
        return stripped[-1], stripped[:-1]


class Protection12:
    """TLS 1.2 AEAD record protection: GCM (RFC 5288) or ChaCha20-Poly1305 (RFC 7905)."""

    __slots__ = ("aead", "chacha", "iv", "salt", "seq", "suite")

    def __init__(self, suite: CipherSuite, key: bytes, iv: bytes) -> None:
        self.suite = suite
        self.aead = suite.aead(key)
        self.chacha = suite.chacha
        self.salt = iv
        self.iv = int.from_bytes(iv, "big") if suite.chacha else 0
        self.seq = 0

    def seal(self, content_type: int, data: bytes, pad: int = 0) -> bytes:
        seq = self.seq
        self.seq = seq + 1
        seq8 = seq.to_bytes(8, "big")
        aad = seq8 + bytes((content_type, 3, 3)) + len(data).to_bytes(2, "big")
        if self.chacha:
            nonce = (self.iv ^ seq).to_bytes(12, "big")
            body = self.aead.encrypt(nonce, bytes(data), aad)
        else:
            body = seq8 + self.aead.encrypt(self.salt + seq8, bytes(data), aad)
        return bytes((content_type, 3, 3)) + len(body).to_bytes(2, "big") + body

    def open(self, header: bytes, payload: bytes) -> tuple[int, bytes]:
        seq = self.seq
        content_type = header[0]
        if self.chacha:
            nonce = (self.iv ^ seq).to_bytes(12, "big")
            ct = payload
        else:
            if len(payload) < 8 + TAG_LEN:
                raise _bad_mac()
            nonce = self.salt + bytes(payload[:8])
            ct = payload[8:]
        plen = len(ct) - TAG_LEN
        if plen < 0:
            raise _bad_mac()
        aad = seq.to_bytes(8, "big") + bytes((content_type, 3, 3)) + plen.to_bytes(2, "big")
        try:
            data = self.aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise _bad_mac() from None
        self.seq = seq + 1
        return content_type, data


Protection = Protection13 | Protection12
