"""The durable store: what was appended and synced comes back; a record cut short at the
end (a crash during its write) is dropped and said so; damage anywhere else refuses to
load; snapshots compact the log; random crash points lose nothing acknowledged."""

from __future__ import annotations

from pathlib import Path

import pytest
from fata_xenstore_stub.journal import LOG, SNAPSHOT, Journal, StoreCorrupt
from fata_xenstore_stub.store import Perms, Store
from hypothesis import given, settings
from hypothesis import strategies as st

DOM0 = 0


def _state(nodes) -> dict:
    return {p: (n.value, n.perms, n.children) for p, n in nodes.items()}


def _apply(store: Store, journal: Journal, op: tuple) -> None:
    getattr(store, op[0])(*op[1:], DOM0, True)
    journal.append(store.effects)
    store.effects.clear()


OPS = [("write", b"/a/b", b"1"), ("write", b"/a/c", b"2"), ("mkdir", b"/d/e"),
       ("set_perms", b"/a", Perms(5, b"r", ((7, b"b"),))), ("rm", b"/a/b"),
       ("write", b"/d/e/f", b"x" * 100)]


def _journaled(directory: Path, ops=OPS) -> tuple[Store, Journal, list[int]]:
    store, journal = Store(), Journal(directory)
    ends = []
    for op in ops:
        _apply(store, journal, op)
        journal.sync()
        ends.append((directory / LOG).stat().st_size)
    return store, journal, ends


def test_what_was_synced_comes_back(tmp_path: Path) -> None:
    store, journal, _ = _journaled(tmp_path)
    journal.close()
    loaded = Journal(tmp_path).load()
    assert _state(loaded.nodes) == _state(store.nodes) and loaded.notes == []
    assert loaded.records == len(OPS)


def test_a_committed_transaction_is_one_record(tmp_path: Path) -> None:
    store, journal = Store(), Journal(tmp_path)
    tx = store.transaction_start(DOM0)
    for i in range(10):
        store.write(b"/tx/%d" % i, b"v", DOM0, True, tx)
    store.transaction_end(tx, commit=True)
    journal.append(store.effects)
    journal.close()
    loaded = Journal(tmp_path).load()
    assert loaded.records == 1 and _state(loaded.nodes) == _state(store.nodes)


def test_a_record_cut_short_at_the_end_is_dropped_and_said(tmp_path: Path) -> None:
    _, journal, ends = _journaled(tmp_path)
    journal.close()
    data = (tmp_path / LOG).read_bytes()
    before = Store()
    for op in OPS[:-1]:
        getattr(before, op[0])(*op[1:], DOM0, True)
    for cut in range(ends[-2] + 1, ends[-1]):
        (tmp_path / LOG).write_bytes(data[:cut])
        loaded = Journal(tmp_path).load()
        assert _state(loaded.nodes) == _state(before.nodes), cut
        assert len(loaded.notes) == 1 and "dropped" in loaded.notes[0], cut
    garbled = bytearray(data)
    garbled[-1] ^= 0xFF  # the last record whole but wrong: a torn write too
    (tmp_path / LOG).write_bytes(bytes(garbled))
    assert "checksum" in Journal(tmp_path).load().notes[0]


def test_damage_before_the_end_refuses_to_load(tmp_path: Path) -> None:
    journal = _journaled(tmp_path)[1]
    journal.close()
    data = bytearray((tmp_path / LOG).read_bytes())
    data[10] ^= 0x01  # inside the first record
    (tmp_path / LOG).write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match=r"log: a record whose checksum does not match at "
                                           r"byte 0; the store is damaged"):
        Journal(tmp_path).load()


def test_snapshots_compact_the_log_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    store, journal, _ = _journaled(tmp_path)
    journal.snapshot(store.nodes)
    assert (tmp_path / LOG).stat().st_size == 0
    _apply(store, journal, ("write", b"/after", b"snap"))
    journal.close()
    loaded = Journal(tmp_path).load()
    assert _state(loaded.nodes) == _state(store.nodes) and loaded.records == 1
    snap = (tmp_path / SNAPSHOT).read_bytes()
    (tmp_path / SNAPSHOT).write_bytes(snap[:-3])
    with pytest.raises(StoreCorrupt, match="snapshot"):
        Journal(tmp_path).load()


PATHS = st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=3).map(
    lambda parts: b"/" + b"/".join(parts))
RANDOM_OPS = st.lists(st.one_of(
    st.tuples(st.just("write"), PATHS, st.binary(max_size=8)),
    st.tuples(st.just("rm"), PATHS)), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None)
@given(RANDOM_OPS, st.data())
def test_a_crash_at_any_byte_loses_nothing_acknowledged(tmp_path_factory, ops, data) -> None:
    directory = tmp_path_factory.mktemp("crash")
    store, journal = Store(), Journal(directory)
    states, ends = [_state(store.nodes)], [0]
    for op in ops:
        try:
            getattr(store, op[0])(*op[1:], DOM0, True)
        except Exception:
            continue
        journal.append(store.effects)
        store.effects.clear()
        journal.sync()  # acknowledged from here on
        states.append(_state(store.nodes))
        ends.append((directory / LOG).stat().st_size if (directory / LOG).exists() else 0)
    journal.close()
    if not (directory / LOG).exists():
        return
    whole = (directory / LOG).read_bytes()
    cut = data.draw(st.integers(0, len(whole)))
    (directory / LOG).write_bytes(whole[:cut])
    acknowledged = max(i for i, end in enumerate(ends) if end <= cut)
    assert _state(Journal(directory).load().nodes) == states[acknowledged]
