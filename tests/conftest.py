"""Shared test configuration: the ``root`` marker skips, with its reason, off root."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``root`` when not running as root (CI runs as root)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / TAP); CI runs these as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
