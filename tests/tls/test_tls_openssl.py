"""Interoperation with OpenSSL in both directions: ``openssl s_client`` against our test
server (``fata.bench.servers.tls``) and our client against ``openssl s_server``, for every
suite, group and certificate type, plus TLS 1.2, HRR, resumption, KeyUpdate and refused old
versions."""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest
from fata.tls.groups import SECP256R1, SECP384R1, SECP521R1, X448, X25519
from fata.tls.suites import SUITES, TLS13

from ._helpers import (
    OPENSSL,
    Proc,
    client_config,
    fata_server_args,
    free_port,
    run,
    s_client,
    s_server_args,
)
from ._peers import http_get, open_tls

pytestmark = pytest.mark.tool("openssl")

KINDS = ["rsa", "p256", "p384", "ed25519"]
SUITES13 = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
]
ALL13 = ":".join([*SUITES13, "TLS_AES_128_CCM_8_SHA256"])
GROUPS = {
    "X25519": "X25519",
    "P-256": "prime256v1",
    "P-384": "secp384r1",
    "X448": "X448",
    "P-521": "secp521r1",
}
TLS12_FOR = {
    "rsa": [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ],
    "p256": [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ],
    "p384": ["ECDHE-ECDSA-AES256-GCM-SHA384"],
    "ed25519": ["ECDHE-ECDSA-AES128-GCM-SHA256"],
}
GET = b"GET / HTTP/1.0\r\n\r\n"


@pytest.fixture(scope="module")
def servers(pki, tmp_path_factory):
    """One test server per certificate type for the whole module."""
    procs = {}
    for kind in KINDS:
        port = free_port()
        procs[kind] = Proc(fata_server_args(pki, kind, port), port)
    yield {k: p.port for k, p in procs.items()}
    for p in procs.values():
        p.stop()


def _ok(out: str, protocol: str, cipher: str) -> None:
    assert "Verify return code: 0 (ok)" in out, out
    assert f"{protocol}, Cipher is {cipher}" in out, out
    assert "Hello from fata.tls" in out, out


@pytest.mark.parametrize("kind", KINDS)
def test_s_client_tls13_suites_and_groups(pki, servers, kind):
    port = servers[kind]
    for suite in SUITES13:
        out = s_client(port, pki, "-ign_eof", "-ciphersuites", suite, stdin=GET)
        _ok(out, "TLSv1.3", suite)
    for group, shown in GROUPS.items():
        out = s_client(port, pki, "-ign_eof", "-groups", group, stdin=GET)
        _ok(out, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
        temp_key = next(line for line in out.splitlines() if line.startswith("Server Temp Key"))
        assert shown in temp_key, out


@pytest.mark.parametrize("kind", KINDS)
def test_s_client_tls12(pki, servers, kind):
    for cipher in TLS12_FOR[kind]:
        out = s_client(servers[kind], pki, "-ign_eof", "-tls1_2", "-cipher", cipher, stdin=GET)
        _ok(out, "TLSv1.2", cipher)
        assert "Secure Renegotiation IS supported" in out
        assert "Extended master secret: yes" in out


@pytest.mark.parametrize("flag", ["-tls1_1", "-tls1"])
def test_old_versions_refused(pki, servers, flag):
    out = s_client(servers["p256"], pki, flag, "-cipher", "DEFAULT:@SECLEVEL=0", stdin=GET)
    assert "alert protocol version" in out, out


def test_s_client_hrr(pki, spawn):
    port = free_port()
    spawn(fata_server_args(pki, "p256", port, "--groups", "secp384r1"), port)
    out = s_client(port, pki, "-ign_eof", "-groups", "X25519:P-384", stdin=GET)
    _ok(out, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
    assert "secp384r1" in out


def test_s_client_resumption(pki, servers, tmp_path):
    sess = tmp_path / "sess.pem"
    out = s_client(servers["rsa"], pki, "-ign_eof", "-sess_out", str(sess), stdin=GET)
    _ok(out, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
    out = s_client(servers["rsa"], pki, "-ign_eof", "-sess_in", str(sess), stdin=GET)
    assert "Reused, TLSv1.3" in out, out
    assert "Hello from fata.tls" in out


class InteractiveClient:
    """``openssl s_client`` to the test server, driven line by line through its stdin.

    s_client takes a command line (K: key update, R: renegotiate, Q: quit) only from a read
    of its stdin that holds nothing else, so each line is written once its predecessor's
    effect shows in s_client's output (``expect``): an echo come back, KEYUPDATE printed."""

    def __init__(self, pki, port: int, *extra: str) -> None:
        assert OPENSSL
        self.proc = subprocess.Popen(
            [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki["ca"]),
             "-servername", "localhost", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdin and self.proc.stdout
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.seen = b""

    @property
    def text(self) -> str:
        return self.seen.decode(errors="replace")

    def send(self, line: bytes) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def expect(self, needle: str, count: int = 1, timeout: float = 10.0) -> None:
        """Read s_client's output until ``needle`` has appeared ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.text.count(needle) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} (x{count}) from s_client within {timeout} s:\n{self.text}"
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"s_client ended before {needle!r} (x{count}):\n{self.text}"
                self.seen += chunk

    def finish(self, last: bytes = b"", timeout: float = 10.0) -> str:
        """Send ``last``, close stdin, and return all s_client printed until it exited."""
        assert self.proc.stdin
        if last:
            self.send(last)
        self.proc.stdin.close()
        os.set_blocking(self.fd, True)
        assert self.proc.stdout
        rest = self.proc.stdout.read()
        self.proc.wait(timeout)
        self.seen += rest
        return self.text


def test_s_client_key_update(pki, spawn):
    port = free_port()
    spawn(fata_server_args(pki, "p256", port, "--echo"), port)
    client = InteractiveClient(pki, port)
    client.send(b"first\n")
    client.expect("first\n")  # echoed by our server
    client.send(b"K\n")  # a key update, and one asked of the server
    client.expect("KEYUPDATE")
    client.send(b"second\n")
    client.expect("second\n")  # under the new keys, both ways
    client.send(b"k\n")  # a key update alone
    client.expect("KEYUPDATE", 2)
    client.send(b"third\n")
    client.expect("third\n")
    out = client.finish(b"Q\n")
    assert out.count("KEYUPDATE") == 2, out
    for word in ("first", "second", "third"):
        assert f"\n{word}\n" in out, out


@pytest.mark.parametrize("kind", KINDS)
def test_client_against_s_server(pki, trust, spawn, kind):
    port = free_port()
    spawn(s_server_args(pki, kind, port, "-www", "-ciphersuites", ALL13), port)
    for code, suite in SUITES.items():
        if suite.version != TLS13:
            continue
        for group in (X25519, SECP256R1, SECP384R1, X448, SECP521R1):
            cfg = client_config(trust, cipher_suites=(code,), groups=(group,))

            async def go(cfg=cfg):
                tls = await open_tls(port, cfg)
                body = await http_get(tls)
                return tls.handshake, body

            hc, body = run(go())
            assert hc.cipher == suite.name and not hc.resumed
            assert b"HTTP/1.0 200 ok" in body and suite.name.encode() in body


def test_client_hrr_resumption_key_update_against_s_server(pki, trust, spawn):
    port = free_port()
    spawn(s_server_args(pki, "rsa", port, "-www", "-groups", "P-384"), port)
    cfg = client_config(trust, groups=(X25519, SECP384R1), key_share_groups=(X25519,))

    async def go():
        tls = await open_tls(port, cfg)
        assert tls.handshake.group == "secp384r1"  # reached through HelloRetryRequest
        tls.conn.key_update(request_peer_update=True)
        body = await http_get(tls)
        assert b"200 ok" in body
        assert tls.key_updates_received == 1  # OpenSSL answered our update request
        assert tls.tickets
        again = await open_tls(port, cfg, session=tls.tickets[0])
        assert again.handshake.resumed
        assert b"200 ok" in await http_get(again)

    run(go())


def test_client_rejects_wrong_name_from_s_server(pki, trust, spawn):
    port = free_port()
    spawn(s_server_args(pki, "p256", port, "-www"), port)
    from fata.tls.flow import TLSHandshakeError

    async def go():
        with pytest.raises(TLSHandshakeError) as exc:
            await open_tls(port, client_config(trust), name="wrong.test")
        return exc.value.closed.alert

    from fata.tls import AlertDescription

    assert run(go()) == AlertDescription.bad_certificate


def test_tls12_renegotiation_refused_and_status_request_ignored(pki, spawn):
    port = free_port()
    spawn(fata_server_args(pki, "p256", port, "--echo"), port)
    client = InteractiveClient(pki, port, "-tls1_2", "-status")
    client.send(b"first\n")
    client.expect("first\n")
    client.send(b"R\n")
    client.expect("RENEGOTIATING")
    client.expect("no renegotiation")  # our warning alert, which OpenSSL treats as fatal
    out = client.finish()
    assert "OCSP response: no response sent" in out, out
    assert "\nfirst\n" in out and "RENEGOTIATING" in out, out
    assert "no renegotiation" in out, out  # our warning alert, which OpenSSL treats as fatal
    out = s_client(port, pki, "-tls1_2", stdin=b"")  # the server carries on
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out, out


def test_client_answers_certificate_request(pki, trust, spawn):
    """s_server asks for a client certificate; we have none and say so (empty Certificate),
    which OpenSSL accepts when the certificate is optional."""
    port = free_port()
    spawn(s_server_args(pki, "p256", port, "-www", "-verify", "1"), port)

    async def go():
        tls = await open_tls(port, client_config(trust))
        return await http_get(tls)

    assert b"200 ok" in run(go())


def test_sni_selects_certificate_in_test_server(pki, spawn):
    port = free_port()
    args = fata_server_args(pki, "rsa", port)
    args += ["--cert", str(pki["ed25519"]), "--key", str(pki["ed25519.key"])]
    spawn(args, port)
    out = s_client(port, pki, "-ign_eof", "-sigalgs", "ed25519:rsa_pss_rsae_sha256", stdin=GET)
    assert "Peer signature type: RSA-PSS" in out, out  # localhost: the first certificate
    out = s_client(port, pki, "-ign_eof", "-sigalgs", "ed25519", stdin=GET)
    # Only Ed25519 acceptable: the second certificate.
    assert "peer signature type: ed25519" in out.lower(), out


def test_s_client_ccm8_when_enabled(pki, spawn):
    port = free_port()
    ciphers = "TLS_AES_128_CCM_8_SHA256:TLS_AES_128_GCM_SHA256"
    spawn(fata_server_args(pki, "p256", port, "--ciphers", ciphers), port)
    out = s_client(port, pki, "-ign_eof", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256", stdin=GET)
    _ok(out, "TLSv1.3", "TLS_AES_128_CCM_8_SHA256")
