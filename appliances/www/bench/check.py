"""Checking a server's answers with http.client before it is timed."""

from __future__ import annotations

import hashlib
import http.client
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .site import SiteFile


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether anything answers an HTTP GET on ``host:port`` (the readiness probe)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False
    return True


def check_files(host: str, port: int, files: Sequence[SiteFile], timeout: float = 5.0,
                ca: Path | None = None) -> list[str]:
    """Problems with the server's responses for ``files`` (empty when all are right); over
    HTTPS, verifying the certificate against ``ca``, when it is given."""
    problems = []

    def connect() -> http.client.HTTPConnection:
        if ca is None:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        context = ssl.create_default_context(cafile=str(ca))
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)

    conn = connect()
    try:
        for f in files:
            try:
                conn.request("GET", f.path)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                problems.append(f"{f.path}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = connect()
                continue
            problems += _compare(f, resp.status, resp.getheader("Content-Length"), body)
    finally:
        conn.close()
    return problems


def _compare(f: SiteFile, status: int, length: str | None, body: bytes) -> list[str]:
    problems = []
    if status != 200:
        problems.append(f"{f.path}: status {status}")
    if length != str(f.size):
        problems.append(f"{f.path}: Content-Length {length!r}, expected {f.size}")
    if hashlib.sha256(body).hexdigest() != f.sha256:
        problems.append(f"{f.path}: body ({len(body)} bytes) has the wrong SHA-256")
    return problems


def check_files_h2(host: str, port: int, files: Sequence[SiteFile], ca: Path) -> list[str]:
    """The same checks over HTTP/2 with TLS, asked with ``curl --http2`` (ALPN)."""
    problems = []
    for f in files:
        try:
            done = subprocess.run(
                ["curl", "-sS", "--http2", "--cacert", str(ca), "--max-time", "10",
                 "-D", "-", f"https://{host}:{port}{f.path}"],
                capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [f"{f.path}: curl: {exc}"]
        head, _, body = done.stdout.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if done.returncode != 0 or not lines[0].startswith("HTTP/2 "):
            problems.append(f"{f.path}: not answered over HTTP/2: {lines[0]!r} "
                            f"{done.stderr.decode(errors='replace').strip()[-200:]}")
            continue
        headers = {n.strip().lower(): v.strip() for n, _, v in
                   (line.partition(":") for line in lines[1:])}
        problems += _compare(f, int(lines[0].split()[1]), headers.get("content-length"), body)
    return problems
