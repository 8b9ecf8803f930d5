"""Watches: the first event, changes at and below the path, subtree removal, relative
paths, special paths, transactions firing at commit, and registration errors."""

from __future__ import annotations

import pytest
from fata.xen.xs_wire import XenstoreError
from fata_xenstore_stub.store import Change, Store
from fata_xenstore_stub.watches import Watch, Watches

DOM0 = 0


def _events(store: Store, watches: Watches) -> list[tuple[object, bytes, bytes]]:
    out = watches.fire(store.changed)
    store.changed.clear()
    return out


def test_a_watch_fires_on_registration_and_on_changes_at_and_below() -> None:
    store, watches = Store(), Watches()
    assert watches.add(Watch("c1", b"/a", b"tok")) == ("c1", b"/a", b"tok")
    store.write(b"/a/b/c", b"1", DOM0, True)  # parents made on the way fire nothing
    assert _events(store, watches) == [("c1", b"/a/b/c", b"tok")]  # of their own (C daemon)
    store.mkdir(b"/a/b", DOM0, True)  # already there: nothing changes, nothing fires
    assert _events(store, watches) == []
    store.mkdir(b"/a/d", DOM0, True)
    assert _events(store, watches) == [("c1", b"/a/d", b"tok")]
    store.write(b"/ab", b"x", DOM0, True)  # a sibling with the same prefix is not below
    assert _events(store, watches) == []
    watches.add(Watch("c2", b"/a/b/c", b"deep"))
    store.rm(b"/a/b", DOM0, True)
    assert _events(store, watches) == [("c1", b"/a/b", b"tok"), ("c2", b"/a/b/c", b"deep")]


def test_relative_and_special_watches() -> None:
    store, watches = Store(), Watches()
    strip = b"/local/domain/5/"
    assert watches.add(Watch("g", strip + b"device", b"t", strip)) == ("g", b"device", b"t")
    watches.add(Watch("d0", b"@releaseDomain", b"r"))
    store.write(strip + b"device/vif", b"", DOM0, True)
    assert _events(store, watches) == [("g", b"device/vif", b"t")]
    assert watches.special(b"@releaseDomain") == [("d0", b"@releaseDomain", b"r")]


def test_transactions_fire_when_they_commit() -> None:
    store, watches = Store(), Watches()
    watches.add(Watch("c", b"/t", b"k"))
    tx = store.transaction_start(DOM0)
    store.write(b"/t/x", b"1", DOM0, True, tx)
    assert _events(store, watches) == []
    store.transaction_end(tx, commit=True)
    assert ("c", b"/t/x", b"k") in _events(store, watches)


def test_registration_errors_and_reset() -> None:
    watches = Watches()
    watches.add(Watch("c", b"/p", b"k"))
    with pytest.raises(XenstoreError) as err:
        watches.add(Watch("c", b"/p", b"k"))
    assert err.value.code == "EEXIST"
    watches.add(Watch("other", b"/p", b"k"))  # another connection may
    with pytest.raises(XenstoreError):
        watches.remove("c", b"/p", b"nope")
    watches.remove("c", b"/p", b"k")
    assert watches.count("c") == 0 and watches.count("other") == 1
    watches.reset("other")
    assert watches.fire([Change(b"/p")]) == []
