"""Fata's DNS appliance: a memoising authoritative name server (engine sans-IO + unikernel)."""

__version__ = "0.1.0"
