"""``fata bench www``: the Fata www appliance against nginx, requests/s per file size.

The harness writes a site of deterministic files (1 KB, 10 KB, 100 KB), starts each server
pinned to one core on a loopback port, checks every file's response (status, length,
SHA-256), then runs wrk pinned to another core for a fixed time per file; rounds are
interleaved and the median kept. It prints a table and writes a JSON record to ``--out``.
``README.md`` beside this file says more.

Exit status: 0 when Fata ran and answered correctly; 1 when it did not, or wrk is missing;
2 for bad options. A missing nginx is a row saying so and does not change the status.

Usable as ``python appliances/www/bench/harness.py ARGS`` or by loading this file and
calling :func:`main` (what ``fata bench www`` does).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PACKAGE = "fata_www_bench"
"""Import name under which this folder's modules are loaded (it has no installable name)."""


def _bootstrap() -> None:
    """Make this folder importable as :data:`PACKAGE`, and ``fata`` importable from source."""
    if importlib.util.find_spec("fata") is None:
        sys.path.insert(0, str(REPO / "core"))
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, HERE / "__init__.py", submodule_search_locations=[str(HERE)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)


def main(argv: list[str]) -> int:
    """Run the benchmark with command-line arguments ``argv``; return the exit status."""
    _bootstrap()
    runner = importlib.import_module(f"{PACKAGE}.runner")
    return int(runner.main(list(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
