"""Benchmark support shared by every appliance's harness (``fata bench APPLIANCE``).

Each appliance keeps its own harness in ``appliances/<name>/bench/``: it knows how to start
the real competitor (BIND, nginx, OVS, ...) and how to load it. What all harnesses have in
common -- printing the side-by-side table, writing the JSON record, drawing the grouped bar
chart and computing "ours versus theirs" ratios -- lives in :mod:`fata.bench.report`, so the
results of different appliances look and read the same.
"""
