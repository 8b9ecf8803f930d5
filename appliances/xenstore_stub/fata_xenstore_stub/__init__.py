"""Fata's xenstore daemon (work in progress: the store so far, see README.md)."""
