"""Key derivation: the TLS 1.3 key schedule (RFC 8446 7.1) and the TLS 1.2 PRF (RFC 5246 5).

HMAC and hashes come from the standard library (OpenSSL underneath); they are the same
primitives ``cryptography``'s HKDF uses, without its object overhead per call.
"""

from __future__ import annotations

import hashlib
import hmac

from fata.tls.suites import CipherSuite

HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), hash_name)
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context
    return hkdf_expand(hash_name, secret, info, length)


class KeySchedule:
    """The TLS 1.3 secrets of one connection, advanced stage by stage."""

    def __init__(self, suite: CipherSuite, psk: bytes | None = None) -> None:
        self.suite = suite
        self.h = suite.hash_name
        self.hlen = suite.hash_len
        self.zeros = bytes(self.hlen)
        self.early_secret = hkdf_extract(self.h, self.zeros, psk if psk else self.zeros)
        self.handshake_secret = b""
        self.master_secret = b""

    def transcript_hash(self, transcript: bytes) -> bytes:
        return hashlib.new(self.h, transcript).digest()

    def derive_secret(self, secret: bytes, label: bytes, transcript: bytes) -> bytes:
        return hkdf_expand_label(self.h, secret, label, self.transcript_hash(transcript), self.hlen)

    def binder_key(self) -> bytes:
        """The resumption binder key (external PSKs, with ``ext binder``, are not supported)."""
        return self.derive_secret(self.early_secret, b"res binder", b"")

    def finished_key(self, base_key: bytes) -> bytes:
        return hkdf_expand_label(self.h, base_key, b"finished", b"", self.hlen)

    def finished_mac(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        return hmac.digest(self.finished_key(base_key), transcript_hash, self.h)

    def enter_handshake(self, shared_secret: bytes, transcript: bytes) -> tuple[bytes, bytes]:
        """Mix in (EC)DHE; return (client, server) handshake traffic secrets."""
        derived = self.derive_secret(self.early_secret, b"derived", b"")
        self.handshake_secret = hkdf_extract(self.h, derived, shared_secret)
        th = self.transcript_hash(transcript)
        c = hkdf_expand_label(self.h, self.handshake_secret, b"c hs traffic", th, self.hlen)
        s = hkdf_expand_label(self.h, self.handshake_secret, b"s hs traffic", th, self.hlen)
        return c, s

    def enter_application(self, transcript: bytes) -> tuple[bytes, bytes]:
        """Return (client, server) application traffic secrets from CH..server Finished."""
        derived = self.derive_secret(self.handshake_secret, b"derived", b"")
        self.master_secret = hkdf_extract(self.h, derived, self.zeros)
        th = self.transcript_hash(transcript)
        c = hkdf_expand_label(self.h, self.master_secret, b"c ap traffic", th, self.hlen)
        s = hkdf_expand_label(self.h, self.master_secret, b"s ap traffic", th, self.hlen)
        self.exporter_master = hkdf_expand_label(
            self.h, self.master_secret, b"exp master", th, self.hlen
        )
        return c, s

    def resumption_master(self, transcript: bytes) -> bytes:
        return self.derive_secret(self.master_secret, b"res master", transcript)

    def ticket_psk(self, resumption_master: bytes, nonce: bytes) -> bytes:
        return hkdf_expand_label(self.h, resumption_master, b"resumption", nonce, self.hlen)


def traffic_keys(suite: CipherSuite, secret: bytes) -> tuple[bytes, bytes]:
    """The (key, iv) pair of a TLS 1.3 traffic secret."""
    key = hkdf_expand_label(suite.hash_name, secret, b"key", b"", suite.key_len)
    iv = hkdf_expand_label(suite.hash_name, secret, b"iv", b"", 12)
    return key, iv


def prf12(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS 1.2 PRF: P_hash(secret, label + seed)."""
    seed = label + seed
    out = b""
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return out[:length]
