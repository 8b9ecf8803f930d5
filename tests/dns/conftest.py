"""Fixtures for the DNS appliance tests: engines over test zones, the running appliance,
and real peers (BIND's named, Knot's knotd) serving the same zones."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "core", ROOT / "appliances" / "dns"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import pytest  # noqa: E402
from dnstest_util import EXAMPLE_ZONE, make_server  # noqa: E402


@pytest.fixture(scope="session")
def example_text() -> str:
    """The appliance's baked example zone."""
    return EXAMPLE_ZONE.read_text()


@pytest.fixture()
def server(example_text: str):
    """An engine serving the example zone, the lab child zone and a second zone."""
    return make_server()
