"""Typed parse errors: malformed input becomes a counted drop, never an escaping exception."""

from __future__ import annotations


class ParseError(ValueError):
    """A frame or packet is malformed; ``counter`` names the drop counter it increments."""

    def __init__(self, counter: str, detail: str = "") -> None:
        super().__init__(f"{counter}: {detail}" if detail else counter)
        self.counter = counter
