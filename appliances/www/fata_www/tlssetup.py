"""HTTPS set-up: the certificates to serve, the TLS configuration, and the 308 to HTTPS.

Certificates come through devices, never from the host directly: ``--tls-cert FILE`` and
``--tls-key FILE`` (repeatable, paired in order) are keys of the run-time store ``tls``
(the host's files unless ``fata run --kv tls=DIR`` confines them to ``DIR``); without them
the development certificate baked at build time (``fata_www.devcert``) is served.  With
several pairs the one whose names match the client's SNI is chosen, else the first
(``fata.tls``'s rule).  ALPN offers ``h2`` when HTTP/2 is on, and ``http/1.1``.

The plain listener can answer every request with a ``308`` to the same path over HTTPS
(``--redirect-http``): :class:`RedirectResponses` stands in for the site's responses there,
so the HTTP/1.1 engine (limits, timeouts, pipelining) is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fata.devices import KV, KeyNotFound
from fata.tls import TLSConfig
from fata.tls.certs import CertifiedKey

from fata_www.responses import SERVER, Prepared, Reply, error_reply

DEV_CERT, DEV_KEY = "cert.pem", "key.pem"


class TLSSetupError(ValueError):
    """A certificate or key that cannot be served, named by its option and file."""

    is_user_error = True  # the runtime prints the message, not a traceback


def load_pairs(store: KV, certs: Sequence[str], keys: Sequence[str]) -> list[CertifiedKey]:
    """The ``--tls-cert``/``--tls-key`` pairs read from ``store``; TLSSetupError names the
    option at fault (counts that differ, a missing file, bad PEM, a key not the leaf's)."""
    if len(certs) != len(keys):
        raise TLSSetupError(f"{len(certs)} --tls-cert and {len(keys)} --tls-key given: each "
                            f"certificate needs its key, in the same order")
    return [_pair(store, cert, key, f"--tls-cert {cert} --tls-key {key}")
            for cert, key in zip(certs, keys, strict=True)]


def _pair(store: KV, cert: str, key: str, what: str) -> CertifiedKey:
    try:
        cert_pem, key_pem = store.get(cert), store.get(key)
    except KeyNotFound as exc:
        raise TLSSetupError(f"{what}: no such file {exc.args[0]}") from None
    except OSError as exc:
        raise TLSSetupError(f"{what}: cannot read: {exc}") from None
    try:
        pair = CertifiedKey.from_pem(cert_pem, key_pem)
    except (ValueError, TypeError) as exc:
        raise TLSSetupError(f"{what}: not a PEM certificate chain and private key: "
                            f"{exc}") from None
    if pair.chain[0].public_key() != pair.key.public_key():  # type: ignore[attr-defined]
        raise TLSSetupError(f"{what}: the key is not the certificate's")
    return pair


def dev_pair(store: KV) -> CertifiedKey:
    """The development certificate baked into the image."""
    return _pair(store, DEV_CERT, DEV_KEY, "the development certificate")


def tls_config(pairs: list[CertifiedKey], random: Callable[[int], bytes], http2: bool
               ) -> TLSConfig:
    """One configuration for every connection (so session tickets resume across them)."""
    return TLSConfig(random=random, certificates=pairs,
                     alpn_protocols=["h2", "http/1.1"] if http2 else ["http/1.1"])


def _authority(host: bytes, tls_port: int) -> bytes | None:
    """``host[:port]`` for the HTTPS URL of a request whose ``Host`` is ``host``; None
    when it is not a host name or address (no redirect is built from it)."""
    host = host.strip()
    if host.startswith(b"["):  # an IPv6 literal, maybe with a port
        end = host.find(b"]")
        if end < 0:
            return None
        name = host[: end + 1]
        rest = host[end + 1:]
        if rest and not (rest.startswith(b":") and rest[1:].isdigit()):
            return None
    else:
        name, _, port = host.partition(b":")
        if port and not port.isdigit():
            return None
    allowed = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_[]:")
    if not name or not set(name) <= allowed:
        return None
    return name if tls_port == 443 else name + b":%d" % tls_port


@dataclass
class RedirectResponses:
    """What the plain listener answers with ``--redirect-http``: every method and path a
    ``308 Permanent Redirect`` to ``https://HOST[:TLS_PORT]TARGET`` (method and body kept
    by the client, RFC 9110 section 15.4.9), ``400`` without a usable ``Host``."""

    tls_port: int
    fast: dict[bytes, Prepared] = field(default_factory=dict)  # nothing takes the fast path

    def answer(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> Reply:
        authority = _authority(headers.get(b"host", b""), self.tls_port)
        if authority is None:
            return error_reply(400)
        if method == b"OPTIONS" and target == b"*":
            target = b"/"
        if not target.startswith(b"/"):  # absolute-form: keep only the path
            scheme_end = target.find(b"://")
            slash = target.find(b"/", scheme_end + 3) if scheme_end >= 0 else -1
            target = target[slash:] if slash >= 0 else b"/"
        location = b"https://" + authority + target
        body = b"308 Permanent Redirect: " + location + b"\n"
        return Reply(308, [(b"Server", SERVER), (b"Location", location),
                           (b"Content-Type", b"text/plain; charset=utf-8"),
                           (b"Content-Length", str(len(body)).encode("ascii"))], body)
