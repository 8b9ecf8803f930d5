"""Loading the DNS benchmark harness the way ``fata bench dns`` does: by file path."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "appliances" / "dns" / "bench" / "harness.py"


def load_harness() -> ModuleType:
    """The harness module, loaded from its file and *not* registered in ``sys.modules``
    (the least a caller may do), so the tests catch a harness that depends on more."""
    spec = importlib.util.spec_from_file_location("fata_dns_bench_harness_under_test", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def harness() -> ModuleType:
    return load_harness()


@pytest.fixture(scope="session")
def bench(harness: ModuleType) -> SimpleNamespace:
    """The harness's parts (zones, check, dnsperf, ...) as attributes."""
    harness._bootstrap()
    names = ["zones", "check", "dnsperf", "flood", "process", "peers", "options", "results",
             "runner"]
    return SimpleNamespace(
        **{name: importlib.import_module(f"{harness.PACKAGE}.{name}") for name in names}
    )
