"""Servers the harnesses and tests run as peers (not harnesses: ``fata bench`` lists none)."""
