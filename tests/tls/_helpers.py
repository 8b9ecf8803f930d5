"""Helpers for the TLS tests: real peers (openssl, our test server ``fata.bench.servers.tls``
as a subprocess) on loopback ports, and configs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import fata
from fata.tls import CertifiedKey, TLSConfig

sys.path.insert(0, str(Path(__file__).parent))

CORE = str(Path(fata.__file__).resolve().parent.parent)
# The peers' paths; tests that run them carry ``pytest.mark.tool("openssl")`` / ``("curl")``.
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def certified(pki: dict[str, Path], kind: str) -> CertifiedKey:
    return CertifiedKey.from_files(pki[kind], pki[f"{kind}.key"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Poll until something accepts connections on ``port`` (a peer starting up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = CORE + os.pathsep + e.get("PYTHONPATH", "")
    return e


class Proc:
    def __init__(self, args: list[str], port: int) -> None:
        self.args = args
        self.port = port
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env(),
        )
        try:
            wait_port(port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.proc.stdout.read() if self.proc.stdout else b""
        return out.decode(errors="replace")


def fata_server_args(pki: dict[str, Path], kind: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fata.bench.servers.tls",
        "--cert",
        str(pki[kind]),
        "--key",
        str(pki[f"{kind}.key"]),
        "--port",
        str(port),
        *extra,
    ]


def s_server_args(pki: dict[str, Path], kind: str, port: int, *extra: str) -> list[str]:
    assert OPENSSL
    return [
        OPENSSL,
        "s_server",
        "-accept",
        f"127.0.0.1:{port}",
        "-cert",
        str(pki[kind]),
        "-key",
        str(pki[f"{kind}.key"]),
        "-cert_chain",
        str(pki["chain"]),
        *extra,
    ]


def s_client(
    port: int, pki: dict[str, Path], *extra: str, stdin: bytes = b"", timeout: float = 10
) -> str:
    assert OPENSSL
    args = [
        OPENSSL,
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-CAfile",
        str(pki["ca"]),
        "-verify_return_error",
        *extra,
    ]
    r = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def tls_config(**kw) -> TLSConfig:
    """A config drawing on the host's CSPRNG unless the test passes its own ``random``
    (the engine has no default source: it is sans-IO)."""
    kw.setdefault("random", os.urandom)
    return TLSConfig(**kw)


def client_config(trust: list, **kw) -> TLSConfig:
    return tls_config(trust_store=trust, **kw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))
