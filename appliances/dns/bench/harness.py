"""``fata bench dns``: the Fata DNS appliance against BIND9, NSD and Knot, side by side.

For each zone size (100, 1,000 and 10,000 names by default) the harness writes one zone file
and one query file (90% names that exist, 10% NXDOMAIN) that every server gets unchanged.
Then, one server at a time, it starts the server pinned to a single core on a loopback high
port, waits for the first answer (timing it), checks a sample of answers against the zone,
runs dnsperf pinned to another core for a fixed time, reads the server's resident memory and
stops it; ``--rounds`` times, interleaved, keeping the median. Then each server once more
per round with response rate limiting on, under a spoofed flood (``flood.py``) beside the
ordinary queries: what leaves towards the flood's victims, and the ordinary qps meanwhile.
It prints the tables, and writes
it with a JSON record and a PNG bar chart (qps per server per zone size, after the ASPLOS
2013 unikernel DNS figure) to ``--out``. ``README.md`` beside this file says more.

Exit status: 0 when Fata ran at every size and answered correctly; 1 when it did not, or
when the load generator is missing; 2 for bad options. A competitor that cannot be installed
or started is reported as such in the table and does not change the exit status.

Usable as ``python appliances/dns/bench/harness.py ARGS`` or by loading this file and
calling :func:`main` (what ``fata bench dns`` does).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PACKAGE = "fata_dns_bench"
"""Import name under which this folder's modules are loaded (it has no installable name)."""


def _bootstrap() -> None:
    """Make this folder importable as :data:`PACKAGE`, and ``fata`` importable from source.

    The harness is loaded by file path, not by import name, so its sibling modules need a
    package to live in; a unique name keeps it apart from other appliances' ``bench``. This
    file itself defines nothing but :func:`main`, so it works however it is loaded (even as
    a module object that is not in ``sys.modules``).
    """
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
