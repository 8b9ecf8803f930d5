"""Benchmark harness for the Fata DNS appliance against BIND9, NSD and Knot.

``fata bench dns`` loads :mod:`harness` from this folder and calls ``main(argv)``. The
other modules are its parts: zone and query generation (:mod:`zones`), one launcher per
server (:mod:`peers`), process control with CPU pinning (:mod:`process`), installing
missing Debian packages (:mod:`install`), the load generator (:mod:`dnsperf`) and the
answer check (:mod:`check`).
"""
