"""Console device: the appliance's log, one line per event."""

from __future__ import annotations

import abc


class Console(abc.ABC):
    """Line-oriented logging with levels (debug, info, warning, error)."""

    @abc.abstractmethod
    def log(self, level: str, message: str) -> None:
        """Write one event line if ``level`` is enabled."""

    def debug(self, message: str) -> None:
        """Log at debug level."""
        self.log("debug", message)

    def info(self, message: str) -> None:
        """Log at info level."""
        self.log("info", message)

    def warning(self, message: str) -> None:
        """Log at warning level."""
        self.log("warning", message)

    def error(self, message: str) -> None:
        """Log at error level."""
        self.log("error", message)
