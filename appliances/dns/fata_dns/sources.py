"""Where zones come from: master files on the host (``--zone``) or the baked data (KV).

Reading happens only here, at start and on reload; the engine never touches files.
A catalog is built completely or not at all, so a bad zone never half-loads.
"""

from __future__ import annotations

import gc

from fata.devices import KV, KeyNotFound

from fata_dns.errors import ZoneError
from fata_dns.lookup import Catalog
from fata_dns.zone import Zone, load_zone_text


def _read_host(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def load_host_zone(path: str) -> Zone:
    """One zone from a master file on the host; ``$INCLUDE`` reads host files too."""
    try:
        text = _read_host(path)
    except OSError as exc:
        raise ZoneError(f"cannot read zone file: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError as exc:
        raise ZoneError(f"zone file is not UTF-8 text: {exc}", path) from None
    return load_zone_text(path, text, _read_host)


def load_kv_zone(kv: KV, key: str) -> Zone:
    """One zone from the appliance's baked data; ``$INCLUDE`` names other keys."""

    def read(name: str) -> str:
        try:
            return kv.get(name).decode("utf-8")
        except KeyNotFound:
            raise OSError(f"no such data key {name!r}") from None

    try:
        text = read(key)
    except (OSError, UnicodeDecodeError) as exc:
        raise ZoneError(f"cannot read zone: {exc}", key) from None
    return load_zone_text(key, text, read)


def load_catalog(zone_files: list[str], kv: KV | None) -> Catalog:
    """All zones: the ``--zone`` files, or with none given every ``*.zone`` key of ``kv``.

    The cyclic garbage collector is paused meanwhile: loading allocates tens of thousands
    of containers that all live on (the zone's dicts, RRsets, records), none of them in a
    cycle, and every few hundred allocations would otherwise start a collection that scans
    them again; that is about a tenth of the start-up time of a large zone.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if zone_files:
            zones = [load_host_zone(path) for path in zone_files]
        elif kv is not None:
            zones = [load_kv_zone(kv, key) for key in kv.keys("") if key.endswith(".zone")]
        else:
            zones = []
    finally:
        if was_enabled:
            gc.enable()
    if not zones:
        raise ZoneError("no zones to serve: give --zone FILE or bake *.zone files in data/")
    return Catalog(zones)
