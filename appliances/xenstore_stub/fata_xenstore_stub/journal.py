"""The durable store: a snapshot file and a write-ahead log beside it, in ``--store DIR``.

Why a log of our own rather than SQLite: the store is a tree kept whole in memory (every
read is a dictionary lookup), so durability needs only "append what changed, fsync, then
answer"; a log gives that with one ``write`` and one ``fsync`` per batch of requests
(group commit: every request answered in one pass of the event loop shares the fsync),
and its format is a page of code that the tests can corrupt at every byte.

Records are ``length (u32) | crc32 (u32) | body``, little-endian; a body is a batch of
effects, each a node's new state or its removal, so a request, or a whole committed
transaction, is one record and lands whole or not at all.  ``snapshot`` holds one record
with every node; ``log`` the records since.  :meth:`Journal.snapshot` writes a new
snapshot to a temporary file, fsyncs it, renames it over the old one, fsyncs the
directory, and only then empties the log.

Loading refuses, with :class:`StoreCorrupt` naming the file and offset, a snapshot that is
not one whole, valid record and a log record that is damaged with more records after it.
A damaged or incomplete *last* log record is what a crash during its write leaves: it was
never acknowledged (the fsync had not returned), so it is dropped, and said so.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from fata_xenstore_stub.store import Node, Perms

RECORD = struct.Struct("<II")
SNAPSHOT, LOG = "snapshot", "log"
_PUT, _DEL = 1, 2


class StoreCorrupt(Exception):
    """The store's files are damaged: which file, where, and what was wrong."""

    is_user_error = True


def _pack_bytes(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def encode_effects(effects: list[tuple[bytes, Node | None]]) -> bytes:
    """A record body: each effect as ``PUT path value perms`` or ``DEL path``."""
    out = bytearray()
    for path, node in effects:
        if node is None:
            out += bytes((_DEL,)) + _pack_bytes(path)
            continue
        perms = node.perms
        out += bytes((_PUT,)) + _pack_bytes(path) + _pack_bytes(node.value)
        out += struct.pack("<IcI", perms.owner, perms.default, len(perms.acl))
        for dom, letter in perms.acl:
            out += struct.pack("<Ic", dom, letter)
    return bytes(out)


def decode_effects(body: bytes) -> list[tuple[bytes, Perms | None, bytes]]:
    """``(path, perms or None for a removal, value)`` for each effect; ValueError if the
    body is not a sequence of whole effects."""
    out = []
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(body):
            raise ValueError("effect cut short")
        chunk = body[pos:pos + n]
        pos += n
        return chunk

    def take_bytes() -> bytes:
        return take(struct.unpack("<I", take(4))[0])

    while pos < len(body):
        kind = take(1)[0]
        path = take_bytes()
        if kind == _DEL:
            out.append((path, None, b""))
            continue
        if kind != _PUT:
            raise ValueError(f"unknown effect {kind}")
        value = take_bytes()
        owner, default, count = struct.unpack("<IcI", take(9))
        acl = tuple(struct.unpack("<Ic", take(5)) for _ in range(count))
        out.append((path, Perms(owner, default, acl), value))
    return out


def frame(body: bytes) -> bytes:
    return RECORD.pack(len(body), zlib.crc32(body)) + body


@dataclass
class Loaded:
    """What the files held: the nodes by path, and what was said while reading them."""

    nodes: dict[bytes, Node]
    notes: list[str] = field(default_factory=list)
    records: int = 0


def _records(data: bytes, name: str, notes: list[str] | None) -> list[bytes]:
    """The bodies of ``data``'s records; a bad one is StoreCorrupt, or, when it is the
    last and ``notes`` is given (the log), dropped with a note."""
    bodies = []
    pos = 0
    while pos < len(data):
        bad, end = None, len(data)  # a record cut short reaches the end of the file
        if len(data) - pos < RECORD.size:
            bad = "a record header cut short"
        else:
            length, crc = RECORD.unpack_from(data, pos)
            if pos + RECORD.size + length > len(data):
                bad = f"a record of {length} bytes with {len(data) - pos - RECORD.size} there"
            else:
                end = pos + RECORD.size + length
                if zlib.crc32(data[pos + RECORD.size:end]) != crc:
                    bad = "a record whose checksum does not match"
        if bad is not None:
            if notes is not None and end == len(data):
                notes.append(f"{name}: dropped {bad} at byte {pos}, the end of the file "
                             f"(a write cut short by a crash; it had not been acknowledged)")
                return bodies
            raise StoreCorrupt(f"{name}: {bad} at byte {pos}; the store is damaged and "
                               f"is not loaded (restore it or start from an empty --store)")
        bodies.append(data[pos + RECORD.size:end])
        pos = end
    return bodies


def build_nodes(effects: list[tuple[bytes, Perms | None, bytes]],
                nodes: dict[bytes, tuple[Perms, bytes]]) -> None:
    for path, perms, value in effects:
        if perms is None:
            for key in [k for k in nodes if k == path or k.startswith(path + b"/")]:
                del nodes[key]
        else:
            nodes[path] = (perms, value)


class Journal:
    """The snapshot and log of one store directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = None
        self.unsynced = 0  # records written since the last fsync

    def load(self) -> Loaded:
        """Read the snapshot and replay the log (StoreCorrupt if they are damaged)."""
        flat: dict[bytes, tuple[Perms, bytes]] = {b"/": (Perms(0), b"")}
        notes: list[str] = []
        count = 0
        snap = self.directory / SNAPSHOT
        if snap.exists():
            bodies = _records(snap.read_bytes(), str(snap), None)
            if len(bodies) != 1:
                raise StoreCorrupt(f"{snap}: {len(bodies)} records, a snapshot is one")
            build_nodes(self._decode(bodies[0], snap), flat)
        log = self.directory / LOG
        if log.exists():
            for body in _records(log.read_bytes(), str(log), notes):
                build_nodes(self._decode(body, log), flat)
                count += 1
        return Loaded(tree(flat), notes, count)

    @staticmethod
    def _decode(body: bytes, path: Path) -> list[tuple[bytes, Perms | None, bytes]]:
        try:
            return decode_effects(body)
        except (ValueError, struct.error) as exc:
            raise StoreCorrupt(f"{path}: a record that does not decode: {exc}") from None

    def append(self, effects: list[tuple[bytes, Node | None]]) -> None:
        """Write one record (not yet durable: :meth:`sync`)."""
        if not effects:
            return
        if self._log is None:
            self._log = open(self.directory / LOG, "ab")
        self._log.write(frame(encode_effects(effects)))
        self.unsynced += 1

    def sync(self) -> None:
        """Make every appended record durable (one fsync for all of them)."""
        if self._log is not None and self.unsynced:
            self._log.flush()
            os.fsync(self._log.fileno())
            self.unsynced = 0

    def snapshot(self, nodes: dict[bytes, Node]) -> None:
        """Write every node as the new snapshot, then start an empty log."""
        self.sync()
        body = encode_effects(sorted(nodes.items()))
        tmp = self.directory / (SNAPSHOT + ".tmp")
        with open(tmp, "wb") as f:
            f.write(frame(body))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / SNAPSHOT)
        self._fsync_dir()
        if self._log is not None:
            self._log.close()
        self._log = open(self.directory / LOG, "wb")
        os.fsync(self._log.fileno())
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sync()
        if self._log is not None:
            self._log.close()
            self._log = None


def tree(flat: dict[bytes, tuple[Perms, bytes]]) -> dict[bytes, Node]:
    """Nodes with their children sets rebuilt from the paths (a node whose parent is
    missing is StoreCorrupt: the files disagree with themselves)."""
    children: dict[bytes, set[bytes]] = {path: set() for path in flat}
    for path in flat:
        if path == b"/":
            continue
        parent, _, name = path.rpartition(b"/")
        parent = parent or b"/"
        if parent not in children:
            raise StoreCorrupt(f"node {path!r} has no parent in the store")
        children[parent].add(name)
    return {path: Node(value, perms, frozenset(children[path]))
            for path, (perms, value) in flat.items()}
