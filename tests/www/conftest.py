"""Fixtures for the www appliance tests: engines over small sites, the running appliance."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "core", ROOT / "appliances" / "www"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import pytest  # noqa: E402
from wwwtest_util import SAMPLE_FILES, make_server  # noqa: E402


@pytest.fixture()
def server():
    """An engine's shared state over :data:`SAMPLE_FILES`, loaded at ``LOADED``."""
    return make_server()


@pytest.fixture()
def site_dir(tmp_path: Path) -> Path:
    """:data:`SAMPLE_FILES` written into a directory, to serve with ``--site``."""
    root = tmp_path / "site"
    for key, body in SAMPLE_FILES.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root
