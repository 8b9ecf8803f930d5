"""The daemon's engine on messages: answers with the request's ids, the standard errors,
the read-only socket, watches delivered to their connection, transactions, domains, and
effects collected for the journal before anything is answered."""

from __future__ import annotations

from fata.xen.xs_wire import Message, MessageReader, Op
from fata_xenstore_stub.daemon import Daemon, Session
from hypothesis import given, settings
from hypothesis import strategies as st


def ask(session: Session, op: int, *parts: bytes, tx: int = 0, req: int = 1,
        raw: bytes | None = None) -> list[Message]:
    payload = raw if raw is not None else b"".join(p + b"\0" for p in parts)
    session.receive(Message(op, req, tx, payload).encode())
    out = list(MessageReader().feed(b"".join(session.outbox)))
    session.outbox.clear()
    return out


def test_write_read_directory_rm() -> None:
    d = Daemon()
    s = d.connect("tool")
    (ok,) = ask(s, Op.WRITE, raw=b"/vm/1/name\0guest one", req=7)
    assert ok == Message(Op.WRITE, 7, 0, b"OK\0")
    assert ask(s, Op.READ, b"/vm/1/name")[0].payload == b"guest one"
    assert ask(s, Op.DIRECTORY, b"/vm")[0].payload == b"1\0"
    assert ask(s, Op.RM, b"/vm")[0].payload == b"OK\0"
    (err,) = ask(s, Op.READ, b"/vm/1/name", req=9)
    assert err == Message(Op.ERROR, 9, 0, b"ENOENT\0")
    assert [p for p, _ in d.effects]  # what the journal must write before answering


def test_errors_for_unknown_malformed_and_read_only() -> None:
    d = Daemon()
    s, ro = d.connect("rw"), d.connect("ro", read_only=True)
    assert ask(s, 99)[0].payload == b"ENOSYS\0"
    assert ask(s, Op.READ, b"a", b"b")[0].payload == b"EINVAL\0"
    assert ask(s, Op.READ, b"/bad//path")[0].payload == b"EINVAL\0"
    assert ask(s, Op.WRITE, raw=b"/no-value")[0].payload == b"EINVAL\0"
    assert ask(ro, Op.WRITE, raw=b"/x\0v")[0].payload == b"EROFS\0"
    ask(s, Op.WRITE, raw=b"/x\0v")
    assert ask(ro, Op.READ, b"/x")[0].payload == b"v"
    assert ask(s, Op.READ, b"/x", tx=1234)[0].payload == b"ENOENT\0"  # not its transaction


def test_watches_reach_their_connection_with_the_token() -> None:
    d = Daemon()
    watcher, writer = d.connect("w"), d.connect("x")
    first = ask(watcher, Op.WATCH, b"/dev", b"tok")
    assert [m.op for m in first] == [Op.WATCH, Op.WATCH_EVENT]
    assert first[1].payload == b"/dev\0tok\0"
    ask(writer, Op.WRITE, raw=b"/dev/vif\0up")  # makes /dev too: one event, for the path
    events = list(MessageReader().feed(b"".join(watcher.outbox)))
    assert [m.payload for m in events] == [b"/dev/vif\0tok\0"]
    watcher.close()
    ask(writer, Op.WRITE, raw=b"/dev/vbd\0up")
    assert d.watches.count(watcher) == 0


def test_transactions_and_a_conflict_between_two_clients() -> None:
    d = Daemon()
    a, b = d.connect("a"), d.connect("b")
    ask(a, Op.WRITE, raw=b"/counter\x000")
    ta = int(ask(a, Op.TRANSACTION_START, b"")[0].payload.rstrip(b"\0"))
    tb = int(ask(b, Op.TRANSACTION_START, b"")[0].payload.rstrip(b"\0"))
    ask(a, Op.READ, b"/counter", tx=ta)
    ask(b, Op.READ, b"/counter", tx=tb)
    ask(a, Op.WRITE, raw=b"/counter\x001", tx=ta)
    ask(b, Op.WRITE, raw=b"/counter\x002", tx=tb)
    assert ask(a, Op.TRANSACTION_END, b"T", tx=ta)[0].payload == b"OK\0"
    assert ask(b, Op.TRANSACTION_END, b"T", tx=tb)[0].payload == b"EAGAIN\0"
    assert ask(a, Op.READ, b"/counter")[0].payload == b"1"
    tc = int(ask(b, Op.TRANSACTION_START, b"")[0].payload.rstrip(b"\0"))
    ask(b, Op.WRITE, raw=b"/left\0x", tx=tc)
    b.close()  # gone mid-transaction: nothing of it lands
    assert ask(a, Op.READ, b"/left")[0].payload == b"ENOENT\0"


def test_domains_paths_and_special_watches() -> None:
    d = Daemon()
    s = d.connect("tool")
    assert ask(s, Op.GET_DOMAIN_PATH, b"3")[0].payload == b"/local/domain/3\0"
    assert ask(s, Op.IS_DOMAIN_INTRODUCED, b"3")[0].payload == b"F\0"
    ask(s, Op.WATCH, b"@introduceDomain", b"i")
    out = ask(s, Op.INTRODUCE, b"3", b"1234", b"5")
    assert out[0].payload == b"OK\0" and out[1].payload == b"@introduceDomain\0i\0"
    assert ask(s, Op.IS_DOMAIN_INTRODUCED, b"3")[0].payload == b"T\0"
    assert ask(s, Op.RELEASE, b"3")[0].payload == b"OK\0"
    assert ask(s, Op.RELEASE, b"3")[0].payload == b"ENOENT\0"


def test_directory_part_pages_a_long_directory() -> None:
    d = Daemon()
    s = d.connect("tool")
    names = [b"child-%04d" % i for i in range(600)]  # about 6.6 KB of names
    for name in names:
        ask(s, Op.WRITE, raw=b"/big/" + name + b"\0v")
    got, offset = b"", 0
    while True:
        part = ask(s, Op.DIRECTORY_PART, b"/big", b"%d" % offset)[0].payload
        _, _, chunk = part.partition(b"\0")
        if chunk.endswith(b"\0\0") or chunk == b"\0":
            got += chunk[:-1]
            break
        got += chunk
        offset += len(chunk)
    assert got.split(b"\0")[:-1] == sorted(names)
    assert ask(s, Op.DIRECTORY, b"/big")[0].op == Op.ERROR  # too big for one answer


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes_the_daemon(data: bytes) -> None:
    d = Daemon()
    s = d.connect("fuzz")
    s.receive(data)
    for msg in MessageReader().feed(b"".join(s.outbox)):
        assert msg.op != Op.INVALID
    good = d.connect("good")
    assert ask(good, Op.WRITE, raw=b"/ok\0v")[0].payload == b"OK\0"  # others still served


def test_watch_and_transaction_quotas_for_an_unprivileged_connection() -> None:
    from fata_xenstore_stub.store import Quotas, Store

    d = Daemon(Store(quotas=Quotas(watches=2, transactions=1)))
    guest = d.connect("guest")
    guest.domid, guest.privileged = 5, False
    assert ask(guest, Op.WATCH, b"/a", b"1")[0].payload == b"OK\0"
    assert ask(guest, Op.WATCH, b"/b", b"2")[0].payload == b"OK\0"
    assert ask(guest, Op.WATCH, b"/c", b"3")[0].payload == b"E2BIG\0"
    assert ask(guest, Op.TRANSACTION_START, b"")[0].op == Op.TRANSACTION_START
    assert ask(guest, Op.TRANSACTION_START, b"")[0].payload == b"ENOSPC\0"
    tool = d.connect("dom0 tool")
    for i in range(5):  # the privileged tool is not limited
        assert ask(tool, Op.WATCH, b"/w%d" % i, b"t")[0].payload == b"OK\0"


def _guest(d: Daemon, key: str, domid: int) -> Session:
    session = d.connect(key)
    session.domid, session.privileged = domid, False
    return session


def test_watch_events_only_for_what_the_watcher_may_read() -> None:
    d = Daemon()
    tool, guest = d.connect("dom0"), _guest(d, "guest", 5)
    ask(tool, Op.WRITE, raw=b"/shared\0")
    ask(tool, Op.SET_PERMS, b"/shared", b"r0")  # everyone may read it
    assert ask(guest, Op.WATCH, b"/shared", b"t")[1].op == Op.WATCH_EVENT
    ask(tool, Op.WRITE, raw=b"/shared/open\0hello")  # inherits r0: the guest hears of it
    ask(tool, Op.WRITE, raw=b"/shared/vault/key\0k")
    guest.outbox.clear()
    ask(tool, Op.SET_PERMS, b"/shared/vault", b"n0")  # heard: the guest could read it
    ask(tool, Op.SET_PERMS, b"/shared/vault/key", b"n0")  # heard: its parent was readable
    ask(tool, Op.WRITE, raw=b"/shared/vault/key\0new key")  # hidden: node and parent are
    ask(tool, Op.WRITE, raw=b"/shared/vault\0v")  # heard: its parent is readable
    ask(tool, Op.WRITE, raw=b"/shared/open\0again")
    heard = [m.payload for m in MessageReader().feed(b"".join(guest.outbox))]
    assert heard == [b"/shared/vault\0t\0", b"/shared/vault/key\0t\0", b"/shared/vault\0t\0",
                     b"/shared/open\0t\0"]
    guest.outbox.clear()
    ask(tool, Op.RM, b"/shared/vault")  # heard: the parent (still) readable
    heard = [m.payload for m in MessageReader().feed(b"".join(guest.outbox))]
    assert heard == [b"/shared/vault\0t\0"]
    guest.outbox.clear()
    ask(tool, Op.WRITE, raw=b"/hidden/a/b\0x")
    ask(tool, Op.SET_PERMS, b"/hidden/a", b"n0", b"r5")
    assert ask(guest, Op.WATCH, b"/hidden/a/b", b"u")[1].op == Op.WATCH_EVENT
    guest.outbox.clear()
    ask(tool, Op.RM, b"/hidden/a")  # b was readable only by its parent: the guest hears
    heard = [m.payload for m in MessageReader().feed(b"".join(guest.outbox))]
    assert heard == [b"/hidden/a/b\0u\0"]


def test_set_target_lets_a_device_model_act_for_its_guest() -> None:
    d = Daemon()
    tool, stubdom = d.connect("dom0"), _guest(d, "stubdom", 6)
    for domid in (b"5", b"6"):
        ask(tool, Op.INTRODUCE, domid, b"1", b"1")
    ask(tool, Op.WRITE, raw=b"/local/domain/5/device\0")
    ask(tool, Op.SET_PERMS, b"/local/domain/5/device", b"n5")  # the guest's alone
    assert ask(stubdom, Op.READ, b"/local/domain/5/device")[0].payload == b"EACCES\0"
    assert ask(tool, Op.SET_TARGET, b"6", b"5")[0].payload == b"OK\0"
    assert ask(stubdom, Op.WRITE, raw=b"/local/domain/5/device/vif\0up")[0].payload == b"OK\0"
    assert ask(stubdom, Op.READ, b"/local/domain/5/device/vif")[0].payload == b"up"
    assert ask(stubdom, Op.SET_TARGET, b"6", b"5")[0].payload == b"EACCES\0"  # dom0's call
    assert ask(tool, Op.SET_TARGET, b"6", b"9")[0].payload == b"ENOENT\0"
    ask(tool, Op.RELEASE, b"6")
    assert d.store.targets == {}


def test_introduce_on_rings_waits_for_the_transport_and_keeps_order() -> None:
    d = Daemon()
    d.rings = True
    tool = d.connect("tool")
    ask(tool, Op.WATCH, b"@introduceDomain", b"i")
    tool.receive(Message(Op.INTRODUCE, 2, 0, b"4\x0012\x007\x00").encode()
                 + Message(Op.READ, 3, 0, b"/\0").encode())
    assert tool.outbox == [] and len(d.introductions) == 1  # nothing answered yet
    intro = d.introductions.pop()
    assert (intro.domid, intro.mfn, intro.port) == (4, 12, 7)
    d.introduced(intro, None)
    out = list(MessageReader().feed(b"".join(tool.outbox)))
    assert [(m.op, m.req_id) for m in out] == [
        (Op.INTRODUCE, 2), (Op.WATCH_EVENT, 0), (Op.READ, 3)]
    assert 4 in d.domains
    tool.outbox.clear()
    tool.receive(Message(Op.INTRODUCE, 5, 0, b"6\x001\x002\x00").encode())
    d.introduced(d.introductions.pop(), "EINVAL")  # the page could not be mapped
    (refused,) = MessageReader().feed(b"".join(tool.outbox))
    assert refused.payload == b"EINVAL\0"
    assert 6 not in d.domains
    assert ask(tool, Op.INTRODUCE, b"0", b"1", b"2")[0].payload == b"EINVAL\0"
    ask(tool, Op.RELEASE, b"4")
    assert d.releases == [4]


def test_a_domain_that_does_not_read_is_held_to_its_quotas() -> None:
    from fata_xenstore_stub.store import Quotas, Store

    d = Daemon(Store(quotas=Quotas(outstanding=3, events=2)))
    guest = d.connect("ring", domid=5)
    assert not guest.privileged
    burst = b"".join(Message(Op.GET_DOMAIN_PATH, i, 0, b"5\0").encode() for i in range(10))
    guest.receive(burst)
    assert len(guest.outbox) == 3 and len(guest.queue) == 7 and not guest.wants_input
    guest.backlog, answered = 3, guest.outbox[:]  # the transport took them to write
    guest.outbox.clear()
    guest.process()
    assert guest.outbox == [] and len(guest.queue) == 7  # still not written: held
    guest.backlog = 0  # written
    guest.process()
    assert len(guest.outbox) == 3 and len(answered) == 3
    guest.outbox.clear()
    tool = d.connect("tool")
    ask(tool, Op.WRITE, raw=b"/local/domain/5/w\0x")
    ask(tool, Op.SET_PERMS, b"/local/domain/5/w", b"b5")
    guest.queue.clear()
    ask(guest, Op.WATCH, b"/local/domain/5/w", b"t")
    guest.backlog = 2  # two answers not written yet: no room for events
    for i in range(3):
        ask(tool, Op.WRITE, raw=b"/local/domain/5/w\0%d" % i)
    assert guest.outbox == [] and guest.events_dropped == 3
    tool.outbox.clear()
    for i in range(30):  # dom0's tools are not limited
        tool.receive(Message(Op.GET_DOMAIN_PATH, i, 0, b"1\0").encode())
    assert len(tool.outbox) == 30 and tool.wants_input


def test_features_per_domain_set_before_introduce() -> None:
    d = Daemon()
    tool, ro = d.connect("tool"), d.connect("ro", read_only=True)
    assert ask(tool, Op.GET_FEATURE)[0].payload == b"3\0"  # reconnection and error
    assert ask(tool, Op.SET_FEATURE, b"7", b"1")[0].payload == b"OK\0"
    assert ask(tool, Op.GET_FEATURE, b"7")[0].payload == b"1\0"
    assert ask(tool, Op.SET_FEATURE, b"7", b"4")[0].payload == b"EINVAL\0"  # unsupported
    assert ask(ro, Op.SET_FEATURE, b"7", b"0")[0].payload == b"EROFS\0"
    d.rings = True
    tool.receive(Message(Op.INTRODUCE, 1, 0, b"7\x001\x002\x00").encode())
    intro = d.introductions.pop()
    assert intro.features == 1  # what its ring will advertise
    d.introduced(intro, None)
    tool.outbox.clear()
    assert ask(tool, Op.SET_FEATURE, b"7", b"3")[0].payload == b"EBUSY\0"
    guest = d.connect("ring", domid=7)
    assert ask(guest, Op.GET_FEATURE)[0].payload == b"1\0"
    assert ask(guest, Op.GET_FEATURE, b"7")[0].payload == b"EACCES\0"


def test_quotas_read_and_set_globally_and_per_domain() -> None:
    d = Daemon()
    tool = d.connect("tool")
    names = ask(tool, Op.GET_QUOTA)[0].payload
    assert names == b"nodes node-size watches transactions outstanding events\0"
    assert ask(tool, Op.GET_QUOTA, b"watches")[0].payload == b"128\0"
    assert ask(tool, Op.SET_QUOTA, b"watches", b"5")[0].payload == b"OK\0"
    assert ask(tool, Op.GET_QUOTA, b"9", b"watches")[0].payload == b"5\0"  # the default
    assert ask(tool, Op.SET_QUOTA, b"9", b"watches", b"1")[0].payload == b"OK\0"
    assert ask(tool, Op.GET_QUOTA, b"9", b"watches")[0].payload == b"1\0"
    assert ask(tool, Op.GET_QUOTA, b"watches")[0].payload == b"5\0"
    assert ask(tool, Op.GET_QUOTA, b"bogus")[0].payload == b"EINVAL\0"
    assert ask(tool, Op.SET_QUOTA, b"nodes", b"-1")[0].payload == b"EINVAL\0"
    guest = d.connect("ring", domid=9)
    assert ask(guest, Op.GET_QUOTA, b"watches")[0].payload == b"EACCES\0"
    assert ask(guest, Op.WATCH, b"/a", b"1")[0].payload == b"OK\0"
    assert ask(guest, Op.WATCH, b"/b", b"2")[0].payload == b"E2BIG\0"
    ask(tool, Op.SET_QUOTA, b"9", b"watches", b"0")  # 0: no limit
    assert ask(guest, Op.WATCH, b"/b", b"2")[0].payload == b"OK\0"
