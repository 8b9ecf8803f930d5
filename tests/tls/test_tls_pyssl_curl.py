"""Interoperation with Python's ``ssl`` module (both directions) and with curl."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess

import pytest

from ._helpers import CURL, Proc, client_config, fata_server_args, free_port, run
from ._peers import http_get, open_tls


@pytest.fixture(scope="module")
def echo_port(pki):
    port = free_port()
    p = Proc(fata_server_args(pki, "p256", port, "--echo", "--alpn", "http/1.1"), port)
    yield port
    p.stop()


@pytest.fixture(scope="module")
def www_port(pki):
    port = free_port()
    p = Proc(fata_server_args(pki, "rsa", port, "--alpn", "http/1.1"), port)
    yield port
    p.stop()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_python_ssl_client(pki, echo_port, version):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.maximum_version = version
    ctx.set_alpn_protocols(["http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", echo_port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        assert s.version() == version.name.replace("v1_", "v1.")
        assert s.selected_alpn_protocol() == "http/1.1"
        payload = bytes(range(256)) * 1000
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += s.recv(65536)
        assert got == payload
        s.unwrap()  # close_notify both ways


def test_python_ssl_resumption(pki, echo_port):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    with (
        socket.create_connection(("127.0.0.1", echo_port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        s.sendall(b"x")
        assert s.recv(10) == b"x"  # tickets arrive with the first read
        session = s.session
    with (
        socket.create_connection(("127.0.0.1", echo_port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s,
    ):
        s.sendall(b"y")
        assert s.recv(10) == b"y"
        assert s.session_reused


def test_client_against_python_ssl_server(pki, trust):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(pki["p384"]), str(pki["p384.key"]))
    sctx.set_alpn_protocols(["h2", "fata"])

    async def go():
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                w.write(data.upper())
                await w.drain()
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            tls = await open_tls(port, client_config(trust, alpn_protocols=["fata"]))
            assert tls.handshake.alpn == "fata"
            assert tls.handshake.signature_scheme == "ecdsa_secp384r1_sha384"
            await tls.write(b"hello python" * 5000)
            got = b""
            while len(got) < 60000:
                got += await tls.read()
            await tls.close()
            return got

    assert run(go()) == b"HELLO PYTHON" * 5000


@pytest.mark.tool("curl")
@pytest.mark.parametrize(
    "args",
    [[], ["--tlsv1.3"], ["--tlsv1.2", "--tls-max", "1.2"], ["--http1.1"], ["--http2"]],
)
def test_curl(pki, www_port, args):
    assert CURL
    r = subprocess.run(
        [CURL, "-sS", "-v", "--cacert", str(pki["ca"]), *args, f"https://localhost:{www_port}/"],
        capture_output=True,
        timeout=20,
    )
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert b"Hello from fata.tls" in r.stdout
    expect = "TLSv1.2" if "--tls-max" in args else "TLSv1.3"
    assert f"SSL connection using {expect}" in err, err


def test_our_client_http_get(pki, trust, www_port):
    async def go():
        tls = await open_tls(www_port, client_config(trust))
        return await http_get(tls)

    assert b"Hello from fata.tls" in run(go())
