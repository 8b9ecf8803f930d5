"""The daemon's protocol engine: requests in, answers and watch events out, per connection.

Sans-IO: :meth:`Session.receive` takes bytes from one connection and queues what every
connection must be sent (answers for this one, watch events for any) in their
``outbox``; the caller makes the store's changes durable (``Daemon.effects``, for the
journal) *before* writing any of it, so nothing is acknowledged that a crash could lose.

Connections over the Unix sockets are dom0's tools: privileged, and on the read-only
socket refused every change (``EROFS``), as the C daemon does.  Each request is answered
in order with its request and transaction ids; an unknown type gets ``ENOSYS``, a
malformed one ``EINVAL``; a stream that breaks the framing is closed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from fata.xen.xs_wire import (
    FEATURE_ERROR,
    FEATURE_RECONNECTION,
    PAYLOAD_MAX,
    Message,
    MessageReader,
    Op,
    WireError,
    XenstoreError,
    strings_payload,
    watch_event,
)

from fata_xenstore_stub.store import QUOTA_NAMES, Change, Node, Perms, Store, parent_of, resolve
from fata_xenstore_stub.watches import Watch, Watches

OK = b"OK\0"
CHANGES = {Op.WRITE, Op.MKDIR, Op.RM, Op.SET_PERMS, Op.TRANSACTION_START, Op.INTRODUCE,
           Op.RELEASE, Op.SET_TARGET, Op.RESUME, Op.SET_FEATURE, Op.SET_QUOTA}
SUPPORTED = FEATURE_RECONNECTION | FEATURE_ERROR  # what our rings offer


def domain_path(domid: int) -> bytes:
    return b"/local/domain/%d" % domid


@dataclass
class Session:
    """One connection: who it is, its transactions and what it is to be sent.

    ``backlog`` is set by the transport: what was queued for it and is not written yet.
    For an unprivileged connection, requests beyond ``Quotas.outstanding`` in flight wait
    in ``queue`` (the transport stops reading while :attr:`wants_input` is false), and
    watch events beyond ``Quotas.events`` waiting are dropped and counted, so a domain that
    stops reading costs the daemon bounded memory and nobody else anything."""

    daemon: Daemon
    key: object
    domid: int = 0
    privileged: bool = True
    read_only: bool = False
    reader: MessageReader = field(default_factory=MessageReader)
    transactions: set[int] = field(default_factory=set)
    outbox: list[bytes] = field(default_factory=list)
    queue: deque[Message] = field(default_factory=deque)
    waiting: Message | None = None  # a request answered later (INTRODUCE on a ring)
    backlog: int = 0
    events_dropped: int = 0
    closed: bool = False

    def receive(self, data: bytes) -> None:
        """Handle the requests ``data`` completes; a broken stream closes the session."""
        try:
            self.queue.extend(self.reader.feed(data))
        except WireError:
            self.closed = True
        self.process()

    def process(self) -> None:
        """Answer queued requests in order, up to the quota of requests in flight."""
        while self.queue and self.waiting is None and (
                self.privileged or self.in_flight < self.quota("outstanding")):
            msg = self.queue.popleft()
            answer = self.daemon.handle(self, msg)
            if answer is None:
                self.waiting = msg
                break
            self.outbox.append(answer.encode())
            self.daemon.dispatch()

    @property
    def in_flight(self) -> int:
        """Requests answered but not yet written, or deferred."""
        return len(self.outbox) + self.backlog + (self.waiting is not None)

    @property
    def wants_input(self) -> bool:
        """Whether the transport should read more of this connection's requests."""
        return self.privileged or (not self.queue and
                                   self.in_flight < self.quota("outstanding"))

    def queue_event(self, data: bytes) -> None:
        if not self.privileged and len(self.outbox) + self.backlog >= self.quota("events"):
            self.events_dropped += 1
            return
        self.outbox.append(data)

    def quota(self, field: str) -> float:
        """This connection's domain's limit ``field`` of :class:`~.store.Quotas`."""
        return self.daemon.store.quotas_for(self.domid).limit(field)

    def close(self) -> None:
        """The connection went away: its transactions end uncommitted, its watches go."""
        for tx_id in list(self.transactions):
            self.daemon.store.transactions.pop(tx_id, None)
        self.transactions.clear()
        self.daemon.watches.reset(self)
        self.daemon.sessions.discard(self)
        self.queue.clear()
        self.closed = True

    __hash__ = object.__hash__  # sessions are keys of the watch table


@dataclass(frozen=True)
class Introduction:
    """An ``INTRODUCE`` the transport is to carry out (map the ring, bind the channel)
    before :meth:`Daemon.introduced` answers it."""

    session: Session
    request: Message
    domid: int
    mfn: int
    port: int
    features: int = SUPPORTED


class Daemon:
    """The store, the watches and the connections."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self.watches = Watches()
        self.sessions: set[Session] = set()
        self.domains: set[int] = {0}
        self.effects: list[tuple[bytes, Node | None]] = []
        self._pending: list[tuple[object, bytes, bytes]] = []
        self.rings = False  # a transport attaches introduced domains' rings
        self.introductions: list[Introduction] = []
        self.releases: list[int] = []
        self.features: dict[int, int] = {}  # SET_FEATURE before a domain's INTRODUCE

    def connect(self, key: object, *, read_only: bool = False, domid: int = 0) -> Session:
        """A new connection: dom0's tools on the sockets, else domain ``domid``'s ring."""
        session = Session(self, key, domid=domid, privileged=domid == 0,
                          read_only=read_only)
        self.sessions.add(session)
        return session

    def introduced(self, intro: Introduction, error: str | None) -> None:
        """The transport attached (or, with ``error``, could not attach) a ring: answer
        the ``INTRODUCE`` and go on with the requests queued behind it."""
        session = intro.session
        if session.waiting is not intro.request:
            return
        session.waiting = None
        if error is None:
            self._add_domain(intro.domid)
            session.outbox.append(intro.request.reply(OK).encode())
        else:
            session.outbox.append(intro.request.error(error).encode())
        self.dispatch()
        session.process()

    def dispatch(self) -> None:
        """Queue the watch events of the changes so far, and collect the journal's."""
        store = self.store
        if store.changed:
            self._pending += self.watches.fire(store.changed, self._may_read)
            store.changed.clear()
        if store.effects:
            self.effects += store.effects
            store.effects.clear()
        for session, path, token in self._pending:
            if isinstance(session, Session) and not session.closed:
                session.queue_event(watch_event(path, token).encode())
        self._pending.clear()

    def _may_read(self, session: object, path: bytes, change: Change) -> bool:
        """Whether a watcher may learn of ``change`` at ``path``: privileged ones always,
        others if they may read the node or its parent, or could before the change (a
        removed node, lost permissions): the C daemon's ``watch_permitted``."""
        if not isinstance(session, Session) or session.privileged:
            return True
        nodes, before = self.store.nodes, change.before or {}
        allowed = self.store.perms_allow
        if path in before and allowed(before[path], session.domid, "r"):
            return True
        for at in (path, parent_of(path)):
            node = nodes.get(at)
            perms = node.perms if node is not None else before.get(at)
            if perms is not None and allowed(perms, session.domid, "r"):
                return True
        return False

    def handle(self, session: Session, msg: Message) -> Message | None:
        """The answer to one request (its effects recorded, its events queued), or None
        when the transport answers it later (:meth:`introduced`)."""
        try:
            op = Op(msg.op)
        except ValueError:
            return msg.error("ENOSYS")
        if session.read_only and op in CHANGES:
            return msg.error("EROFS")
        if msg.tx_id and msg.tx_id not in session.transactions and op not in (
                Op.WATCH_EVENT, Op.ERROR):
            return msg.error("ENOENT")
        try:
            payload = self._answer(session, op, msg)
        except XenstoreError as exc:
            return msg.error(exc.code)
        if payload is None:
            return None
        if len(payload) > PAYLOAD_MAX:
            return msg.error("E2BIG")
        return msg.reply(payload)

    def _path(self, session: Session, raw: bytes) -> bytes:
        return resolve(raw, domain_path(session.domid))

    def _answer(self, session: Session, op: Op, msg: Message) -> bytes | None:
        store, tx = self.store, msg.tx_id
        who = (session.domid, session.privileged)
        parts = msg.strings()
        if op == Op.READ:
            return store.read(self._path(session, _one(parts)), *who, tx)
        if op == Op.WRITE:
            path, sep, value = msg.payload.partition(b"\0")
            if not sep:
                raise XenstoreError("EINVAL", "WRITE without a value")
            store.write(self._path(session, path), value, *who, tx)
            return OK
        if op == Op.MKDIR:
            store.mkdir(self._path(session, _one(parts)), *who, tx)
            return OK
        if op == Op.RM:
            store.rm(self._path(session, _one(parts)), *who, tx)
            return OK
        if op == Op.DIRECTORY:
            return strings_payload(store.directory(self._path(session, _one(parts)), *who, tx))
        if op == Op.DIRECTORY_PART:
            return self._directory_part(session, parts, tx)
        if op == Op.GET_PERMS:
            return strings_payload(store.get_perms(self._path(session, _one(parts)), *who,
                                                   tx).strings())
        if op == Op.SET_PERMS:
            if len(parts) < 2:
                raise XenstoreError("EINVAL")
            store.set_perms(self._path(session, parts[0]), Perms.parse(parts[1:]), *who, tx)
            return OK
        if op == Op.WATCH:
            return self._watch(session, parts)
        if op == Op.UNWATCH:
            if len(parts) != 2:
                raise XenstoreError("EINVAL")
            path = parts[0] if parts[0].startswith(b"@") else self._path(session, parts[0])
            self.watches.remove(session, path, parts[1])
            return OK
        if op == Op.RESET_WATCHES:
            self.watches.reset(session)
            return OK
        if op == Op.TRANSACTION_START:
            if not session.privileged and len(session.transactions) >= \
                    session.quota("transactions"):
                raise XenstoreError("ENOSPC")
            tx_id = store.transaction_start(session.domid)
            session.transactions.add(tx_id)
            return b"%d\0" % tx_id
        if op == Op.TRANSACTION_END:
            commit = _one(parts)
            if commit not in (b"T", b"F") or tx not in session.transactions:
                raise XenstoreError("EINVAL" if commit not in (b"T", b"F") else "ENOENT")
            session.transactions.discard(tx)
            store.transaction_end(tx, commit == b"T")
            return OK
        if op == Op.GET_DOMAIN_PATH:
            return domain_path(_domid(_one(parts))) + b"\0"
        if op == Op.IS_DOMAIN_INTRODUCED:
            return b"T\0" if _domid(_one(parts)) in self.domains else b"F\0"
        if op == Op.INTRODUCE:
            return self._introduce(session, msg, parts)
        if op == Op.RELEASE:
            return self._release(session, parts)
        if op == Op.SET_TARGET:
            if not session.privileged:
                raise XenstoreError("EACCES")
            if len(parts) != 2:
                raise XenstoreError("EINVAL")
            domid, target = _domid(parts[0]), _domid(parts[1])
            if domid not in self.domains or target not in self.domains:
                raise XenstoreError("ENOENT")
            store.targets[domid] = target
            return OK
        if op == Op.RESUME:
            if not session.privileged:
                raise XenstoreError("EACCES")
            if _domid(parts[0] if parts else b"") not in self.domains:
                raise XenstoreError("ENOENT")
            return OK
        if op == Op.GET_FEATURE:
            if not parts:
                return b"%d\0" % self.features.get(session.domid, SUPPORTED)
            if not session.privileged:
                raise XenstoreError("EACCES")
            return b"%d\0" % self.features.get(_domid(_one(parts)), SUPPORTED)
        if op == Op.SET_FEATURE:
            if not session.privileged:
                raise XenstoreError("EACCES")
            if len(parts) != 2:
                raise XenstoreError("EINVAL")
            domid, features = _domid(parts[0]), _number(parts[1])
            if features & ~SUPPORTED:
                raise XenstoreError("EINVAL")
            if domid in self.domains:  # its ring already advertised what it has
                raise XenstoreError("EBUSY")
            self.features[domid] = features
            return OK
        if op in (Op.GET_QUOTA, Op.SET_QUOTA):
            if not session.privileged:
                raise XenstoreError("EACCES")
            return self._quota(op, parts)
        if op == Op.CONTROL:
            return OK
        raise XenstoreError("ENOSYS")

    def _quota(self, op: Op, parts: list[bytes]) -> bytes:
        """``GET_QUOTA [[domid|]quota|]`` and ``SET_QUOTA [domid|]quota|value|``: the
        global quotas (new domains' defaults) or one domain's; 0 is unlimited."""
        store = self.store
        if op == Op.GET_QUOTA and not parts:
            return b" ".join(QUOTA_NAMES) + b"\0"
        want = 1 if op == Op.GET_QUOTA else 2
        if len(parts) not in (want, want + 1) or parts[len(parts) - want] not in QUOTA_NAMES:
            raise XenstoreError("EINVAL")
        domid = _domid(parts[0]) if len(parts) == want + 1 else None
        name = parts[len(parts) - want]
        quotas = store.quotas if domid is None else store.quotas_for(domid)
        if op == Op.GET_QUOTA:
            return b"%d\0" % quotas.get(name)
        changed = replace(quotas, **{QUOTA_NAMES[name]: _number(parts[-1])})
        if domid is None:
            store.quotas = changed
        else:
            store.domain_quotas[domid] = changed
        return OK

    def _watch(self, session: Session, parts: list[bytes]) -> bytes:
        if len(parts) != 2:
            raise XenstoreError("EINVAL")
        raw, token = parts
        if not session.privileged and self.watches.count(session) >= \
                session.quota("watches"):
            raise XenstoreError("E2BIG")
        if raw.startswith(b"@"):
            if raw not in (b"@introduceDomain", b"@releaseDomain"):
                raise XenstoreError("EINVAL")
            watch = Watch(session, raw, token)
        else:
            path = self._path(session, raw)
            strip = b"" if raw.startswith(b"/") else domain_path(session.domid) + b"/"
            watch = Watch(session, path, token, strip)
        self._pending.append(self.watches.add(watch))
        return OK

    def _introduce(self, session: Session, msg: Message, parts: list[bytes]
                   ) -> bytes | None:
        """``INTRODUCE domid mfn port``: from now on the domain is known and served on its
        ring (when a transport attaches rings: answered once it has), and
        ``@introduceDomain`` fires.  Introducing a known domain again is accepted, as the
        C daemon does; its ring is not re-attached."""
        if not session.privileged:
            raise XenstoreError("EACCES")
        if len(parts) < 3:
            raise XenstoreError("EINVAL")
        domid, mfn, port = _domid(parts[0]), _number(parts[1]), _number(parts[2])
        if domid == 0:
            raise XenstoreError("EINVAL")
        if domid in self.domains:
            return OK
        if self.rings:
            self.introductions.append(Introduction(session, msg, domid, mfn, port,
                                                   self.features.get(domid, SUPPORTED)))
            return None
        self._add_domain(domid)
        return OK

    def _add_domain(self, domid: int) -> None:
        if domid not in self.domains:
            self.domains.add(domid)
            self._pending += self.watches.special(b"@introduceDomain")

    def _release(self, session: Session, parts: list[bytes]) -> bytes:
        if not session.privileged:
            raise XenstoreError("EACCES")
        domid = _domid(_one(parts))
        if domid == 0 or domid not in self.domains:
            raise XenstoreError("ENOENT")
        self.domains.discard(domid)
        self.store.targets.pop(domid, None)
        self.store.domain_quotas.pop(domid, None)
        self.features.pop(domid, None)
        self.releases.append(domid)
        self._pending += self.watches.special(b"@releaseDomain")
        return OK

    def _directory_part(self, session: Session, parts: list[bytes], tx: int) -> bytes:
        """``DIRECTORY_PART path offset``: the node's generation, then the children from
        byte ``offset`` of the full list that fit, an empty string ending the last part."""
        if len(parts) != 2 or not parts[1].isdigit():
            raise XenstoreError("EINVAL")
        path = self._path(session, parts[0])
        names = self.store.directory(path, session.domid, session.privileged, tx)
        generation = self.store.nodes[path].generation if path in self.store.nodes else 0
        full = strings_payload(names) if names else b""
        offset = int(parts[1])
        if offset > len(full):
            raise XenstoreError("EINVAL")
        head = b"%d\0" % generation
        room = PAYLOAD_MAX - len(head) - 1
        chunk = full[offset:]
        if len(chunk) > room:
            chunk = chunk[:chunk.rfind(b"\0", 0, room) + 1]
            return head + chunk
        return head + chunk + b"\0"


def _one(parts: list[bytes]) -> bytes:
    if len(parts) != 1:
        raise XenstoreError("EINVAL")
    return parts[0]


def _number(text: bytes) -> int:
    if not text.isdigit() or len(text) > 20:
        raise XenstoreError("EINVAL")
    return int(text)


def _domid(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5:
        raise XenstoreError("EINVAL")
    return int(text)
