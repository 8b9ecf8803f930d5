"""HTTPS with Fata's own TLS, talked to by curl, openssl s_client and Python's ssl: every
file over TLS with the development certificate, TLS 1.3 and 1.2, ALPN, session resumption,
SNI choosing among ``--tls-cert`` pairs, the plain listener's 308, HSTS only over TLS, and
bad TLS options as one clear message."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls._certgen import make_pki
from wwwtest_util import (
    APPLIANCE,
    PYTHON,
    ROOT,
    RunningWww,
    baked_site,
    ca_file,
    curl,
    free_port,
    s_client,
    sha256,
    site_files,
    url_path,
    www_on,
)

pytestmark = pytest.mark.tool("curl", "openssl")

HSTS = "max-age=600; includeSubDomains"


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWww]:
    """The baked site over HTTP and HTTPS (the development certificate), with HSTS."""
    tmp = tmp_path_factory.mktemp("https")
    tls_port = free_port()
    with www_on("socket", ["--tls", "--tls-port", str(tls_port), "--hsts", HSTS],
                tmp) as app:
        app.tls_port = tls_port  # type: ignore[attr-defined]
        yield app


def test_every_file_over_https_with_curl(https: RunningWww) -> None:
    port = https.tls_port  # type: ignore[attr-defined]
    for key, body in site_files(baked_site()).items():
        for extra in ((), ("--compressed",)):
            out = curl("--http1.1", "--cacert", ca_file(), *extra,
                       f"https://localhost:{port}{url_path(key)}")
            assert out.returncode == 0, out.stderr
            assert sha256(out.stdout) == sha256(body), (key, extra)


def test_hsts_over_tls_only(https: RunningWww) -> None:
    port = https.tls_port  # type: ignore[attr-defined]
    secure = curl("--cacert", ca_file(), "-D", "-", "-o", "/dev/null",
                  f"https://localhost:{port}/").stdout.decode().lower()
    plain = curl("-D", "-", "-o", "/dev/null", https.url("/")).stdout.decode().lower()
    assert f"strict-transport-security: {HSTS.lower()}" in secure
    assert plain.startswith("http/1.1 200") and "strict-transport-security" not in plain


@pytest.mark.parametrize("version, shown", [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")])
def test_openssl_s_client_alpn_and_both_versions(https: RunningWww, version: str,
                                                 shown: str) -> None:
    port = https.tls_port  # type: ignore[attr-defined]
    request = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    text = s_client(port, version, "-servername", "localhost", "-alpn", "http/1.1",
                    request=request)
    assert "Verify return code: 0 (ok)" in text, text
    assert f"Protocol  : {shown}" in text or f", {shown}," in text, text
    assert "ALPN protocol: http/1.1" in text, text
    assert "HTTP/1.1 200 OK" in text
    body = (baked_site() / "index.html").read_bytes()
    assert body.decode("latin-1") in text


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file())
    context.set_alpn_protocols(["http/1.1"])
    return context


def test_python_http_client_keeps_the_connection_alive(https: RunningWww) -> None:
    port = https.tls_port  # type: ignore[attr-defined]
    conn = http.client.HTTPSConnection("localhost", port, context=_context(), timeout=10)
    try:
        for path in ("/", "/index.html", "/no-such-page"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == (404 if path == "/no-such-page" else 200), path
        assert conn.sock is not None and conn.sock.version() == "TLSv1.3"
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
    finally:
        conn.close()


def _get_over(sock: ssl.SSLSocket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_python_ssl_resumes_with_a_session_ticket(https: RunningWww) -> None:
    port = https.tls_port  # type: ignore[attr-defined]
    context = _context()
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                             server_hostname="localhost") as first:
        assert _get_over(first).startswith(b"HTTP/1.1 200 OK")  # the tickets came with it
        session = first.session
        assert not first.session_reused
    assert session is not None and session.has_ticket
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                             server_hostname="localhost", session=session) as second:
        assert second.session_reused
        assert _get_over(second).startswith(b"HTTP/1.1 200 OK")


def test_a_client_that_does_not_trust_the_certificate_is_refused(https: RunningWww) -> None:
    port = https.tls_port  # type: ignore[attr-defined]
    out = curl("-o", "/dev/null", f"https://localhost:{port}/")  # the system's CAs only
    assert out.returncode == 60, out.stderr  # "SSL certificate problem"
    # and a handshake failure leaves the server serving everyone else
    assert curl("--cacert", ca_file(), "-o", "/dev/null", "-w", "%{http_code}",
                f"https://localhost:{port}/").stdout == b"200"


def test_sni_chooses_among_the_certificate_pairs(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", {"site-a": ["a.test"], "site-b": ["b.test"]})
    tls_port = free_port()
    args = ["--tls-port", str(tls_port),
            "--tls-cert", str(pki["site-a"]), "--tls-key", str(pki["site-a.key"]),
            "--tls-cert", str(pki["site-b"]), "--tls-key", str(pki["site-b.key"])]
    with www_on("socket", args, tmp_path):
        for name in ("a.test", "b.test"):
            out = curl("--cacert", str(pki["ca"]), "--resolve", f"{name}:{tls_port}:127.0.0.1",
                       "-o", "/dev/null", "-w", "%{http_code}",
                       f"https://{name}:{tls_port}/")
            assert out.stdout == b"200", out.stderr
        for name, served in (("b.test", "site-b"), ("a.test", "site-a"),
                             ("other.test", "site-a")):  # no match: the first pair
            text = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port}",
                 "-servername", name], input=b"", capture_output=True, timeout=30
            ).stdout.decode()
            assert f"subject=CN = {served}" in text, (name, text)


def test_the_plain_listener_redirects_to_https(tmp_path: Path) -> None:
    tls_port = free_port()
    with www_on("socket", ["--tls", "--tls-port", str(tls_port), "--redirect-http"],
                tmp_path) as app:
        out = curl("-D", "-", "-o", "/dev/null",
                   f"http://localhost:{app.port}/index.html?x=1")
        head = out.stdout.decode()
        assert head.startswith("HTTP/1.1 308 Permanent Redirect"), head
        assert f"Location: https://localhost:{tls_port}/index.html?x=1\r\n" in head
        followed = curl("-L", "--cacert", ca_file(), f"http://localhost:{app.port}/")
        body = (baked_site() / "index.html").read_bytes()
        assert followed.returncode == 0 and followed.stdout == body


def _run_and_fail(args: list[str], tmp: Path) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "core"), str(APPLIANCE)])
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    out = subprocess.run(
        [python, "-m", "fata", "run", str(APPLIANCE), "--", "--listen", "127.0.0.1",
         "--port", str(free_port()), "--tls-port", str(free_port()), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp))
    assert out.returncode != 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_bad_tls_options_are_one_clear_message(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    cases = [
        (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki["p256.key"])],
         f"--tls-cert {tmp_path / 'nope.pem'} --tls-key {pki['p256.key']}: no such file"),
        (["--tls-cert", str(pki["p256"]), "--tls-key", str(pki["rsa.key"])],
         "the key is not the certificate's"),
        (["--tls-cert", str(pki["p256.key"]), "--tls-key", str(pki["p256.key"])],
         "not a PEM certificate chain"),
        (["--tls-cert", str(pki["p256"])], "1 --tls-cert and 0 --tls-key given"),
        (["--redirect-http"], "--redirect-http needs HTTPS on"),
        (["--tls", "--hsts", "preload"], "--hsts 'preload': expected"),
    ]
    for args, message in cases:
        text = _run_and_fail(args, tmp_path)
        assert message in text, (args, text)
        assert "Traceback" not in text, text
