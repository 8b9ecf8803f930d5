"""Where zones come from: the run-time data store (``--zone``) or the baked data.

Both are ``KV`` devices, read the same way: ``zones`` is a ``kv_runtime()`` store, whose
contents ``fata run`` chooses (on ``unix`` a host directory given with ``--kv zones=DIR``, or
the host's file system, so that ``--zone my.zone`` and ``--zone /etc/zones/a.zone`` name
host files as they always did); ``data`` is the ``kv_ro("data")`` baked into the image.
Reading happens only here, at start and on reload; the engine never touches a device.
A catalog is built completely or not at all, so a bad zone never half-loads.
"""

from __future__ import annotations

import errno
import gc

from fata.devices import KV, KeyNotFound

from fata_dns import names
from fata_dns.errors import ZoneError
from fata_dns.lookup import Catalog
from fata_dns.zone import Zone, load_zone_text


def _reader(kv: KV):
    """``key -> text`` over ``kv``, a missing key being the ``OSError`` a missing file is
    (what ``$INCLUDE`` reports); newlines translated as a text-mode ``open`` does."""

    def read(key: str) -> str:
        try:
            data = kv.get(key)
        except KeyNotFound:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", key) from None
        text = data.decode("utf-8")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    return read


def zone_origin(key: str) -> tuple[bytes | None, str]:
    """``--zone ORIGIN=FILE`` (the origin given, for files without ``$ORIGIN``, as
    ``dnssec-signzone`` writes them) or ``--zone FILE``: the origin if given, and the key.
    An origin has a dot (``example.org``, or ``test.`` for a single label) and no ``/``, so
    ``dir=x/a.zone`` or ``a=b/c.zone`` is a path."""
    origin, sep, path = key.partition("=")
    if not sep or not path or "/" in origin or "." not in origin:
        return None, key
    try:
        return names.from_text(origin.rstrip(".") + ".", None), path
    except names.BadName as exc:
        raise ZoneError(f"--zone {key}: {origin!r} is not a domain name ({exc})") from None


def load_kv_zone(kv: KV, key: str) -> Zone:
    """One zone from ``key`` of ``kv`` (``ORIGIN=KEY`` gives its origin); ``$INCLUDE``
    names other keys of the same store, relative to the including one.  Errors name the
    key and the line, as given."""
    origin, key = zone_origin(key)
    read = _reader(kv)
    try:
        text = read(key)
    except OSError as exc:
        raise ZoneError(f"cannot read zone file: {exc.strerror or exc}", key) from None
    except UnicodeDecodeError as exc:
        raise ZoneError(f"zone file is not UTF-8 text: {exc}", key) from None
    return load_zone_text(key, text, read, origin)


def load_catalog(zone_keys: list[str], data: KV | None, zones: KV | None = None) -> Catalog:
    """All zones: the ``--zone`` keys of ``zones``, or with none given every ``*.zone`` key
    of ``data``.

    The cyclic garbage collector is paused meanwhile: loading allocates tens of thousands
    of containers that all live on (the zone's dicts, RRsets, records), none of them in a
    cycle, and every few hundred allocations would otherwise start a collection that scans
    them again; that is about a tenth of the start-up time of a large zone.
    """
    if zone_keys and zones is None:
        raise ZoneError("--zone needs the run-time data store 'zones'")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if zone_keys:
            loaded = [load_kv_zone(zones, key) for key in zone_keys]
        elif data is not None:
            loaded = [load_kv_zone(data, key) for key in data.keys("") if key.endswith(".zone")]
        else:
            loaded = []
    finally:
        if was_enabled:
            gc.enable()
    if not loaded:
        raise ZoneError("no zones to serve: give --zone FILE or bake *.zone files in data/")
    return Catalog(loaded)
