"""The xenstore store: paths, implicit parents, removal, permissions, and transactions
that commit or fail with EAGAIN; hypothesis runs random operations against a plain model."""

from __future__ import annotations

import pytest
from fata.xen.xs_wire import XenstoreError
from fata_xenstore_stub.store import Perms, Store, resolve
from hypothesis import given, settings
from hypothesis import strategies as st

DOM0, GUEST, OTHER = 0, 5, 7


def code(call, *args) -> str | None:
    try:
        call(*args)
    except XenstoreError as exc:
        return exc.code
    return None


def test_paths_are_resolved_and_checked() -> None:
    assert resolve(b"/local/domain/5/x", b"/local/domain/5") == b"/local/domain/5/x"
    assert resolve(b"device/vif/0", b"/local/domain/5") == b"/local/domain/5/device/vif/0"
    assert resolve(b"/", b"/x") == b"/"
    for bad in (b"/a//b", b"/a/", b"/a b", b"/a/\xff", b"/" + b"a" * 3072, b"a" * 2049):
        with pytest.raises(XenstoreError) as err:
            resolve(bad, b"/local/domain/5")
        assert err.value.code == "EINVAL", bad


def test_write_creates_parents_that_inherit_permissions() -> None:
    store = Store()
    store.write(b"/local/domain/5", b"", DOM0, True)
    store.set_perms(b"/local/domain/5", Perms(GUEST, b"r"), DOM0, True)
    store.write(b"/local/domain/5/device/vif/0/mac", b"00:16:3e", GUEST, False)
    assert store.read(b"/local/domain/5/device/vif/0/mac", OTHER, False) == b"00:16:3e"
    assert store.get_perms(b"/local/domain/5/device", DOM0, True) == Perms(GUEST, b"r")
    assert store.directory(b"/local/domain/5/device/vif", GUEST, False) == [b"0"]
    assert store.read(b"/local/domain/5/device", GUEST, False) == b""  # made, empty


def test_permissions_deny_and_the_owner_and_dom0_may() -> None:
    store = Store()
    store.write(b"/secret", b"s", DOM0, True)
    assert code(store.read, b"/secret", GUEST, False) == "EACCES"  # others: none
    assert code(store.write, b"/x", b"v", GUEST, False) == "EACCES"  # / is dom0's
    store.set_perms(b"/secret", Perms(DOM0, b"n", ((GUEST, b"r"),)), DOM0, True)
    assert store.read(b"/secret", GUEST, False) == b"s"
    assert code(store.read, b"/secret", OTHER, False) == "EACCES"
    assert code(store.write, b"/secret", b"v", GUEST, False) == "EACCES"
    assert code(store.set_perms, b"/secret", Perms(GUEST), GUEST, False) == "EACCES"
    store.set_perms(b"/secret", Perms(DOM0, b"n", ((GUEST, b"b"),)), DOM0, True)
    assert code(store.set_perms, b"/secret", Perms(GUEST), GUEST, False) == "EPERM"
    assert Perms.parse([b"r0", b"b5"]) == Perms(0, b"r", ((5, b"b"),))
    assert Perms.parse([b"r0", b"b5"]).strings() == [b"r0", b"b5"]
    for bad in ([], [b"x0"], [b"r"], [b"rq"]):
        with pytest.raises(XenstoreError):
            Perms.parse(bad)


def test_rm_removes_a_subtree_and_an_absent_node_under_a_parent_is_fine() -> None:
    store = Store()
    store.write(b"/a/b/c", b"1", DOM0, True)
    store.write(b"/a/b/d", b"2", DOM0, True)
    store.rm(b"/a/b", DOM0, True)
    assert store.directory(b"/a", DOM0, True) == []
    assert code(store.read, b"/a/b/c", DOM0, True) == "ENOENT"
    assert b"/a/b/c" not in store.nodes
    assert code(store.rm, b"/a/b", DOM0, True) is None
    assert code(store.rm, b"/nowhere/x", DOM0, True) == "ENOENT"
    assert code(store.rm, b"/", DOM0, True) == "EINVAL"


def test_a_transaction_sees_its_snapshot_and_commits() -> None:
    store = Store()
    store.write(b"/t/a", b"old", DOM0, True)
    tx = store.transaction_start(DOM0)
    store.write(b"/t/a", b"new", DOM0, True, tx)
    store.write(b"/t/b", b"made", DOM0, True, tx)
    assert store.read(b"/t/a", DOM0, True) == b"old"  # not yet outside
    assert store.read(b"/t/a", DOM0, True, tx) == b"new"
    store.transaction_end(tx, commit=True)
    assert store.read(b"/t/a", DOM0, True) == b"new"
    assert store.directory(b"/t", DOM0, True) == [b"a", b"b"]


def test_conflicting_transactions_fail_with_eagain_and_apply_nothing() -> None:
    store = Store()
    store.write(b"/c", b"0", DOM0, True)
    one, two = store.transaction_start(DOM0), store.transaction_start(DOM0)
    value = store.read(b"/c", DOM0, True, one)
    store.write(b"/c", value + b"1", DOM0, True, one)
    store.write(b"/c", store.read(b"/c", DOM0, True, two) + b"2", DOM0, True, two)
    store.write(b"/other", b"x", DOM0, True, two)
    store.transaction_end(one, commit=True)
    assert code(store.transaction_end, two, True) == "EAGAIN"
    assert store.read(b"/c", DOM0, True) == b"01"
    assert code(store.read, b"/other", DOM0, True) == "ENOENT"
    aborted = store.transaction_start(DOM0)
    store.write(b"/c", b"dropped", DOM0, True, aborted)
    store.transaction_end(aborted, commit=False)
    assert store.read(b"/c", DOM0, True) == b"01"
    assert code(store.read, b"/c", DOM0, True, 999) == "ENOENT"


NAMES = st.sampled_from([b"a", b"b", b"c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: b"/" + b"/".join(parts))
OPS = st.one_of(
    st.tuples(st.just("write"), PATHS, st.binary(max_size=4)),
    st.tuples(st.just("mkdir"), PATHS),
    st.tuples(st.just("rm"), PATHS),
    st.tuples(st.just("read"), PATHS),
    st.tuples(st.just("directory"), PATHS),
)


def _model_apply(model: dict[bytes, bytes], op: tuple) -> object:
    """The same operation on a plain dict of path -> value (parents implicit)."""
    kind, path = op[0], op[1]

    def parents(p: bytes) -> list[bytes]:
        parts = p[1:].split(b"/")
        return [b"/" + b"/".join(parts[:i]) for i in range(1, len(parts))]

    if kind in ("write", "mkdir"):
        for parent in parents(path):
            model.setdefault(parent, b"")
        if kind == "write":
            model[path] = op[2]
        else:
            model.setdefault(path, b"")
        return None
    if kind == "rm":
        if path not in model:
            parent = path.rsplit(b"/", 1)[0] or b"/"
            return None if parent == b"/" or parent in model else "ENOENT"
        for key in [k for k in model if k == path or k.startswith(path + b"/")]:
            del model[key]
        return None
    if path not in model:
        return "ENOENT"
    if kind == "read":
        return model[path]
    return sorted({k[len(path) + 1:].split(b"/")[0] for k in model
                   if k.startswith(path + b"/")})


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, max_size=25), st.booleans())
def test_random_operations_agree_with_a_model(ops: list[tuple], in_transaction: bool) -> None:
    store, model = Store(), {}
    tx = store.transaction_start(DOM0) if in_transaction else 0
    for op in ops:
        expected = _model_apply(model, op)
        try:
            got = getattr(store, op[0])(*op[1:], DOM0, True, tx)
        except XenstoreError as exc:
            got = exc.code
        assert got == expected, op
    if tx:
        store.transaction_end(tx, commit=True)
    for path, value in model.items():
        assert store.read(path, DOM0, True) == value
    assert set(store.nodes) - {b"/"} == set(model)


def test_quotas_bound_an_unprivileged_domain_and_not_dom0() -> None:
    from fata_xenstore_stub.store import Quotas

    store = Store(quotas=Quotas(nodes=3, entry_size=8))
    store.write(b"/local/domain/5", b"", DOM0, True)
    store.set_perms(b"/local/domain/5", Perms(GUEST), DOM0, True)
    for name in (b"a", b"b"):  # the domain's own directory counts as one of its nodes
        store.write(b"/local/domain/5/" + name, b"v", GUEST, False)
    assert code(store.write, b"/local/domain/5/c", b"v", GUEST, False) == "ENOSPC"
    assert code(store.write, b"/local/domain/5/a", b"123456789", GUEST, False) == "ENOSPC"
    store.write(b"/local/domain/5/a", b"12345678", GUEST, False)  # at the limit is fine
    tx = store.transaction_start(GUEST)
    store.rm(b"/local/domain/5/b", GUEST, False, tx)
    store.write(b"/local/domain/5/c", b"v", GUEST, False, tx)  # room made in the same tx
    store.transaction_end(tx, commit=True)
    assert store.directory(b"/local/domain/5", GUEST, False) == [b"a", b"c"]
    store.rm(b"/local/domain/5/c", GUEST, False)
    store.write(b"/local/domain/5/d", b"v", GUEST, False)  # removals give the room back
    for i in range(10):
        store.write(b"/dom0/%d" % i, b"x" * 100, DOM0, True)  # dom0 is not limited
