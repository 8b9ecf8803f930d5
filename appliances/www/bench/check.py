"""Checking a server's answers with http.client before it is timed."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Sequence

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


def check_files(host: str, port: int, files: Sequence[SiteFile], timeout: float = 5.0) -> list[str]:
    """Problems with the server's responses for ``files`` (empty when all are right)."""
    problems = []
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        for f in files:
            try:
                conn.request("GET", f.path)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                problems.append(f"{f.path}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            if resp.status != 200:
                problems.append(f"{f.path}: status {resp.status}")
            length = resp.getheader("Content-Length")
            if length != str(f.size):
                problems.append(f"{f.path}: Content-Length {length!r}, expected {f.size}")
            if hashlib.sha256(body).hexdigest() != f.sha256:
                problems.append(f"{f.path}: body ({len(body)} bytes) has the wrong SHA-256")
    finally:
        conn.close()
    return problems
