"""HTTP/2 from the running appliance, to real clients: curl ``--http2`` over TLS (ALPN) and
``--http2-prior-knowledge`` in the clear for every file, ``openssl s_client -alpn h2``,
``h2load`` with many streams per connection, and ``--no-http2``."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from wwwtest_util import (
    APPLIANCE_STACKS,
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


@pytest.fixture(scope="module")
def h2app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWww]:
    tmp = tmp_path_factory.mktemp("h2")
    tls_port = free_port()
    with www_on("socket", ["--tls", "--tls-port", str(tls_port)], tmp) as app:
        app.tls_port = tls_port  # type: ignore[attr-defined]
        yield app


def test_every_file_over_http2_both_ways(h2app: RunningWww) -> None:
    port = h2app.tls_port  # type: ignore[attr-defined]
    for key, body in site_files(baked_site()).items():
        for how, url in ((["--http2", "--cacert", ca_file()],
                          f"https://localhost:{port}{url_path(key)}"),
                         (["--http2-prior-knowledge"], h2app.url(url_path(key)))):
            for extra in ((), ("--compressed",)):
                out = curl(*how, *extra, "-w", "\n%{http_version}", url)
                got, _, version = out.stdout.rpartition(b"\n")
                assert out.returncode == 0, out.stderr
                assert version == b"2" and sha256(got) == sha256(body), (key, how, extra)


def test_openssl_s_client_negotiates_h2(h2app: RunningWww) -> None:
    text = s_client(h2app.tls_port, "-servername", "localhost",  # type: ignore[attr-defined]
                    "-alpn", "h2,http/1.1")
    assert "ALPN protocol: h2" in text, text


@pytest.mark.tool("h2load")
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_h2load_gets_every_answer(h2app: RunningWww, scheme: str) -> None:
    port = h2app.tls_port if scheme == "https" else h2app.port  # type: ignore[attr-defined]
    out = subprocess.run(["h2load", "-n", "400", "-c", "4", "-m", "20",
                          f"{scheme}://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=60)
    assert "400 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout + out.stderr
    assert re.search(r"status codes: 400 2xx", out.stdout), out.stdout


def test_no_http2_offers_only_http1(tmp_path) -> None:
    tls_port = free_port()
    with www_on("socket", ["--tls", "--tls-port", str(tls_port), "--no-http2"],
                tmp_path) as app:
        text = s_client(tls_port, "-servername", "localhost", "-alpn", "h2,http/1.1")
        assert "ALPN protocol: http/1.1" in text, text
        out = curl("--http2", "--cacert", ca_file(), "-o", "/dev/null", "-w",
                   "%{http_version}", f"https://localhost:{tls_port}/")
        assert out.stdout == b"1.1"
        assert curl("--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
                    app.url("/")).stdout == b"200"


@pytest.mark.parametrize("net", APPLIANCE_STACKS)
def test_https_and_http2_on_both_stacks(net: str, tmp_path) -> None:
    """The same TLS and HTTP/2 over the host's TCP and over Fata's own (``--net direct``,
    in a network namespace made for the test; the development certificate names
    10.77.0.2)."""
    tls_port = free_port()
    body = (baked_site() / "index.html").read_bytes()
    with www_on(net, ["--tls", "--tls-port", str(tls_port)], tmp_path) as app:
        for how, url in ((["--http1.1"], f"https://{app.host}:{tls_port}/"),
                         (["--http2"], f"https://{app.host}:{tls_port}/"),
                         (["--http2-prior-knowledge"], app.url("/"))):
            out = curl(*how, "--cacert", ca_file(), "-w", "\n%{http_version}", url)
            got, _, version = out.stdout.rpartition(b"\n")
            assert out.returncode == 0, (how, out.stderr)
            assert got == body and version == (b"1.1" if how == ["--http1.1"] else b"2"), how
