"""Congestion control, pluggable: the interface (``base``) and the algorithms behind it.

``TcpConfig.congestion`` names one of ``ALGORITHMS``; each connection gets its own instance.
"""

from __future__ import annotations

from fata.net.tcp.congestion.base import CongestionControl, Controlled
from fata.net.tcp.congestion.cubic import Cubic
from fata.net.tcp.congestion.newreno import NewReno

ALGORITHMS: dict[str, type[CongestionControl]] = {"newreno": NewReno, "cubic": Cubic}


def algorithm(name: str) -> type[CongestionControl]:
    """The controller class ``name`` selects; ``ValueError`` for an unknown name."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown TCP congestion control {name!r}; "
                         f"choose from {', '.join(sorted(ALGORITHMS))}") from None


__all__ = ["ALGORITHMS", "CongestionControl", "Controlled", "Cubic", "NewReno", "algorithm"]
