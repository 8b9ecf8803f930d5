"""Fixtures for the TLS tests: a generated PKI (no keys in git) and peers stopped after
each test."""

from __future__ import annotations

from pathlib import Path

import pytest
from fata.tls.certs import load_pem_certificates

from ._certgen import make_pki
from ._helpers import Proc


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def trust(pki: dict[str, Path]) -> list:
    return load_pem_certificates(pki["ca"].read_bytes())


@pytest.fixture
def spawn():
    """Start long-running peers; they are stopped at the end of the test."""
    procs: list[Proc] = []

    def start(args: list[str], port: int) -> Proc:
        p = Proc(args, port)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
