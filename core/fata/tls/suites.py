"""Cipher suites: which AEAD, key sizes and hash each suite code means.

Only AEAD suites exist here: the three TLS 1.3 suites and the ECDHE AES-GCM /
ChaCha20-Poly1305 suites of TLS 1.2 (RFC 5289, RFC 7905).  CBC and static-RSA suites are
deliberately absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

TLS13 = 0x0304
TLS12 = 0x0303
VERSION_NAMES = {TLS13: "TLSv1.3", TLS12: "TLSv1.2"}


@dataclass(frozen=True)
class CipherSuite:
    code: int
    name: str
    version: int  # TLS13 or TLS12
    hash_name: str  # "sha256" / "sha384"
    key_len: int
    aead: Callable[[bytes], Any]
    chacha: bool = False
    kx: str = ""  # TLS 1.2 only: "rsa" or "ecdsa" (the certificate's signature family)
    tag_len: int = 16

    @property
    def hash(self) -> Callable[..., Any]:
        return getattr(hashlib, self.hash_name)

    @property
    def hash_len(self) -> int:
        return 48 if self.hash_name == "sha384" else 32


TLS_AES_128_GCM_SHA256 = 0x1301
TLS_AES_256_GCM_SHA384 = 0x1302
TLS_CHACHA20_POLY1305_SHA256 = 0x1303
TLS_AES_128_CCM_SHA256 = 0x1304
TLS_AES_128_CCM_8_SHA256 = 0x1305
ECDHE_ECDSA_AES128_GCM = 0xC02B
ECDHE_ECDSA_AES256_GCM = 0xC02C
ECDHE_RSA_AES128_GCM = 0xC02F
ECDHE_RSA_AES256_GCM = 0xC030
ECDHE_RSA_CHACHA20 = 0xCCA8
ECDHE_ECDSA_CHACHA20 = 0xCCA9
EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
FALLBACK_SCSV = 0x5600

SUITES: dict[int, CipherSuite] = {
    s.code: s
    for s in (
        CipherSuite(0x1301, "TLS_AES_128_GCM_SHA256", TLS13, "sha256", 16, AESGCM),
        CipherSuite(0x1302, "TLS_AES_256_GCM_SHA384", TLS13, "sha384", 32, AESGCM),
        CipherSuite(
            0x1303, "TLS_CHACHA20_POLY1305_SHA256", TLS13, "sha256", 32, ChaCha20Poly1305, True
        ),
        CipherSuite(0x1304, "TLS_AES_128_CCM_SHA256", TLS13, "sha256", 16, AESCCM),
        CipherSuite(
            0x1305,
            "TLS_AES_128_CCM_8_SHA256",
            TLS13,
            "sha256",
            16,
            lambda key: AESCCM(key, tag_length=8),
            tag_len=8,
        ),
        CipherSuite(
            0xC02B, "ECDHE-ECDSA-AES128-GCM-SHA256", TLS12, "sha256", 16, AESGCM, kx="ecdsa"
        ),
        CipherSuite(
            0xC02C, "ECDHE-ECDSA-AES256-GCM-SHA384", TLS12, "sha384", 32, AESGCM, kx="ecdsa"
        ),
        CipherSuite(0xC02F, "ECDHE-RSA-AES128-GCM-SHA256", TLS12, "sha256", 16, AESGCM, kx="rsa"),
        CipherSuite(0xC030, "ECDHE-RSA-AES256-GCM-SHA384", TLS12, "sha384", 32, AESGCM, kx="rsa"),
        CipherSuite(
            0xCCA8,
            "ECDHE-RSA-CHACHA20-POLY1305",
            TLS12,
            "sha256",
            32,
            ChaCha20Poly1305,
            True,
            "rsa",
        ),
        CipherSuite(
            0xCCA9,
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            TLS12,
            "sha256",
            32,
            ChaCha20Poly1305,
            True,
            "ecdsa",
        ),
    )
}

DEFAULT_TLS13_SUITES = (
    TLS_AES_128_GCM_SHA256,
    TLS_AES_256_GCM_SHA384,
    TLS_CHACHA20_POLY1305_SHA256,
    TLS_AES_128_CCM_SHA256,
)
"""GCM and ChaCha20 first; AES-CCM last (it is slower).  CCM_8, with its 64-bit tag, is
implemented but only used when configured explicitly (IANA: not recommended)."""
DEFAULT_TLS12_SUITES = (
    ECDHE_ECDSA_AES128_GCM,
    ECDHE_ECDSA_AES256_GCM,
    ECDHE_ECDSA_CHACHA20,
    ECDHE_RSA_AES128_GCM,
    ECDHE_RSA_AES256_GCM,
    ECDHE_RSA_CHACHA20,
)
