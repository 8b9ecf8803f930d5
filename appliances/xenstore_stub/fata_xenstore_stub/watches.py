"""Watches: who is told when a path changes (``docs/misc/xenstore.txt``, "WATCH").

A watch on ``W`` with a token fires once when it is registered, then for every change at
``W`` or below it, with the changed path; when a subtree is removed, watches on nodes inside
it fire too, each with its own path (as the C daemon's ``fire_watches`` does).  A watch
registered with a relative path is told relative paths (the connection's domain path and
``/`` taken off).  Paths starting with ``@`` (``@introduceDomain``, ``@releaseDomain``)
are special: they fire only when the daemon says so, not for store changes.

Connections are opaque keys here; the daemon queues each event for its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fata.xen.xs_wire import XenstoreError

from fata_xenstore_stub.store import Change


@dataclass(frozen=True, slots=True)
class Watch:
    """One registration: on absolute ``path`` (or special ``@name``) with ``token``;
    ``strip`` is what to take off event paths for a relative registration (or empty)."""

    conn: object
    path: bytes
    token: bytes
    strip: bytes = b""

    def shown(self, path: bytes) -> bytes:
        """``path`` as this watch reports it."""
        if self.strip and path.startswith(self.strip):
            return path[len(self.strip):]
        return path


def _within(child: bytes, parent: bytes) -> bool:
    """Whether ``child`` is ``parent`` or below it."""
    return child == parent or parent == b"/" or child.startswith(parent + b"/")


class Watches:
    """Every connection's watches."""

    def __init__(self) -> None:
        self._by_conn: dict[object, dict[tuple[bytes, bytes], Watch]] = {}

    def add(self, watch: Watch) -> tuple[object, bytes, bytes]:
        """Register ``watch`` (EEXIST if its connection has the same path and token); the
        event it fires at once."""
        mine = self._by_conn.setdefault(watch.conn, {})
        key = (watch.path, watch.token)
        if key in mine:
            raise XenstoreError("EEXIST")
        mine[key] = watch
        return watch.conn, watch.shown(watch.path), watch.token

    def remove(self, conn: object, path: bytes, token: bytes) -> None:
        """Unregister (ENOENT if there is no such watch)."""
        if self._by_conn.get(conn, {}).pop((path, token), None) is None:
            raise XenstoreError("ENOENT")

    def reset(self, conn: object) -> None:
        """Drop every watch of ``conn`` (``RESET_WATCHES``, or it went away)."""
        self._by_conn.pop(conn, None)

    def count(self, conn: object) -> int:
        return len(self._by_conn.get(conn, {}))

    def fire(self, changed: list[Change],
             allowed: Callable[[object, bytes, Change], bool] | None = None
             ) -> list[tuple[object, bytes, bytes]]:
        """The events for store changes: ``(conn, path as shown, token)``, once per watch
        and changed path, in order; ``allowed(conn, path, change)`` says whether that
        connection may learn of ``change`` at ``path`` (read permission, as the C daemon
        checks)."""
        out = []
        for change in changed:
            path, subtree = change.path, change.subtree
            for mine in self._by_conn.values():
                for watch in mine.values():
                    if watch.path.startswith(b"@"):
                        continue
                    if _within(path, watch.path):
                        event = path
                    elif subtree and _within(watch.path, path):
                        event = watch.path
                    else:
                        continue
                    if allowed is None or allowed(watch.conn, event, change):
                        out.append((watch.conn, watch.shown(event), watch.token))
        return out

    def special(self, name: bytes) -> list[tuple[object, bytes, bytes]]:
        """The events for ``@introduceDomain`` or ``@releaseDomain``."""
        return [(w.conn, name, w.token) for mine in self._by_conn.values()
                for w in mine.values() if w.path == name]
