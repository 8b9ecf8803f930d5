"""Fata: a library operating system in Python for sealed, single-purpose network appliances."""

__version__ = "0.1.0"
