"""Errors the DNS appliance reports to its operator."""

from __future__ import annotations


class ZoneError(Exception):
    """A zone that cannot be served, located at ``file:line`` when the fault has a line.

    The runtime prints it as one line (``is_user_error``) and the appliance does not start;
    on reload it is logged and the zones already loaded keep serving.
    """

    is_user_error = True

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")
