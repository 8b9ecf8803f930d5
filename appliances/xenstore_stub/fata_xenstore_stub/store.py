"""The store: xenstore's tree of nodes with their permissions, and transactions.

Semantics are those of the C and OCaml daemons (``docs/misc/xenstore.txt``):

- a path is absolute (``/local/domain/1/name``) after :func:`resolve` has joined a relative
  one to the connection's domain path; its components are ``[A-Za-z0-9_@-]`` and ``/``
  separated, no empty component, no trailing ``/`` (the root excepted), within the length
  limits of ``xs_wire``;
- ``WRITE`` and ``MKDIR`` create the missing parents, each a new node inheriting its
  parent's permissions with the caller as owner; ``MKDIR`` of an existing node is no
  error; ``RM`` removes a subtree, and removing an absent node whose parent exists
  succeeds;
- permissions are a list of ``(domain, letter)``: the first names the owner and what every
  other domain may do, the rest override that for one domain; ``n`` none, ``r`` read, ``w``
  write, ``b`` both.  The owner and privileged callers (dom0) may do everything;
- a transaction works on a snapshot: what it reads and writes is remembered with the
  nodes' generations, and ending it with commit fails with ``EAGAIN`` when any of those
  nodes changed meanwhile (then nothing of it is applied).

Every change is also recorded for those who follow the store: :attr:`Store.changed` lists
the paths changed (with whether a subtree went, for watches on nodes below), and
:attr:`Store.effects` the resulting node states (``None`` for a removed node), which is
what the journal writes; a transaction's are recorded when it commits.  The caller drains
both after each request.

Everything is synchronous and in memory; durability (the log) and the wire are elsewhere.
Errors are :class:`~fata.xen.xs_wire.XenstoreError` with the protocol's names.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from fata.xen.xs_wire import ABS_PATH_MAX, REL_PATH_MAX, XenstoreError

_COMPONENT = re.compile(rb"^[A-Za-z0-9_@\-]+$")
LETTERS = {b"n": "", b"r": "r", b"w": "w", b"b": "rw"}


@dataclass(frozen=True, slots=True)
class Perms:
    """A node's permission list: ``owner`` with ``default`` for every other domain, and
    per-domain ``acl`` overrides; letters are ``n``, ``r``, ``w``, ``b``."""

    owner: int
    default: bytes = b"n"
    acl: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def parse(cls, parts: list[bytes]) -> Perms:
        """From ``SET_PERMS``'s strings (``b"r0"``, ``b"w5"``...); EINVAL if malformed."""
        entries = []
        for part in parts:
            letter, number = part[:1], part[1:]
            if letter not in LETTERS or not number.isdigit() or len(number) > 10:
                raise XenstoreError("EINVAL", f"bad permission {part!r}")
            entries.append((int(number), letter))
        if not entries:
            raise XenstoreError("EINVAL", "no permissions")
        (owner, default), rest = entries[0], entries[1:]
        return cls(owner, default, tuple(rest))

    def strings(self) -> list[bytes]:
        """As ``GET_PERMS`` sends them."""
        return [self.default + b"%d" % self.owner] + [
            letter + b"%d" % dom for dom, letter in self.acl]

    def allows(self, domid: int, want: str) -> bool:
        """Whether ``domid`` (not privileged) may ``want`` (``"r"`` or ``"w"``)."""
        if domid == self.owner:
            return True
        for dom, letter in self.acl:
            if dom == domid:
                return want in LETTERS[letter]
        return want in LETTERS[self.default]


@dataclass(frozen=True, slots=True)
class Node:
    """One node: its value, permissions, the names of its children, and a generation that
    changes whenever the node or its set of children does."""

    value: bytes
    perms: Perms
    children: frozenset[bytes] = frozenset()
    generation: int = 0


def resolve(path: bytes, domain_path: bytes) -> bytes:
    """``path`` made absolute against the connection's ``domain_path`` and checked
    (EINVAL if it is not a valid xenstore path)."""
    if path.startswith(b"/"):
        if len(path) > ABS_PATH_MAX:
            raise XenstoreError("EINVAL", "path too long")
        full = path
    else:
        if len(path) > REL_PATH_MAX:
            raise XenstoreError("EINVAL", "path too long")
        full = domain_path.rstrip(b"/") + b"/" + path
    if full == b"/":
        return full
    parts = full[1:].split(b"/")
    if not all(_COMPONENT.match(p) for p in parts):
        raise XenstoreError("EINVAL", f"bad path {path!r}")
    return full


def parent_of(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[0] or b"/"


def name_of(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[1]


class Change(NamedTuple):
    """One change for the watches: ``path`` written, made or removed (``subtree``: the
    node and everything below went, so watches inside fire too), and the permissions
    nodes had before (the removed ones; the node whose permissions changed), since a
    watcher who could read a node hears of its removal or of losing it (the C daemon)."""

    path: bytes
    subtree: bool = False
    before: dict[bytes, Perms] | None = None


@dataclass
class View:
    """What one operation reads and changes: the committed tree, or a transaction's
    snapshot with its own changes on top (see :class:`Transaction`)."""

    nodes: dict[bytes, Node]
    changes: dict[bytes, Node | None] | None = None  # a transaction's writes (None: removed)
    seen: dict[bytes, int] | None = None  # generations a transaction's reads relied on
    changed: list[Change] = field(default_factory=list)
    effects: list[tuple[bytes, Node | None]] = field(default_factory=list)
    owned: Counter[int] = field(default_factory=Counter)  # nodes per owner (the quota's)

    def get(self, path: bytes) -> Node | None:
        if self.changes is not None and path in self.changes:
            return self.changes[path]
        node = self.nodes.get(path)
        if self.seen is not None:
            self.seen.setdefault(path, node.generation if node is not None else -1)
        return node

    def put(self, path: bytes, node: Node | None) -> None:
        count(self.owned, self.get(path), node)  # a write relies on what was there too
        if self.changes is not None:
            self.changes[path] = node
            return
        if node is None:
            self.nodes.pop(path, None)
        else:
            self.nodes[path] = node
        self.effects.append((path, node))


def count(owned: Counter[int], before: Node | None, after: Node | None) -> None:
    """Keep ``owned`` (nodes per owning domain) right across one node's change."""
    if before is not None:
        owned[before.perms.owner] -= 1
    if after is not None:
        owned[after.perms.owner] += 1


@dataclass
class Transaction:
    """An open transaction: the snapshot it started from is the committed tree as of then
    (``nodes``, copied on write by the store), its changes and what it relied on."""

    tx_id: int
    domid: int
    nodes: dict[bytes, Node]
    changes: dict[bytes, Node | None] = field(default_factory=dict)
    seen: dict[bytes, int] = field(default_factory=dict)
    changed: list[Change] = field(default_factory=list)
    owned: Counter[int] = field(default_factory=Counter)  # the change to the store's counts

    def view(self) -> View:
        return View(self.nodes, self.changes, self.seen, self.changed, owned=self.owned)


@dataclass(frozen=True)
class Quotas:
    """What one unprivileged domain may use (the C daemon's defaults): nodes it owns,
    bytes of a value, watches, open transactions, and per connection the requests in
    flight and the watch events waiting to be written (the last four are the daemon's);
    privileged callers are not limited."""

    nodes: int = 1000
    entry_size: int = 2048
    watches: int = 128
    transactions: int = 10
    outstanding: int = 20  # requests read but not yet answered and written
    events: int = 1024  # watch events queued and not yet written

    def get(self, name: bytes) -> int:
        """The quota called ``name`` on the wire (``GET_QUOTA``); 0 means unlimited."""
        return getattr(self, QUOTA_NAMES[name])

    def limit(self, field: str) -> float:
        value = getattr(self, field)
        return value if value else float("inf")


QUOTA_NAMES = {b"nodes": "nodes", b"node-size": "entry_size", b"watches": "watches",
               b"transactions": "transactions", b"outstanding": "outstanding",
               b"events": "events"}
"""``GET_QUOTA``/``SET_QUOTA`` names: the ones ``xenstore.txt`` names, and ours."""


class Store:
    """The tree, with ``/`` owned by dom0 and readable by nobody else, and the
    operations of the protocol on it (``domid`` is the caller's; ``privileged`` callers,
    dom0 and its tools, pass every permission check and every quota)."""

    def __init__(self, nodes: dict[bytes, Node] | None = None,
                 quotas: Quotas | None = None) -> None:
        self.nodes: dict[bytes, Node] = nodes or {b"/": Node(b"", Perms(0))}
        self.quotas = quotas or Quotas()
        self.domain_quotas: dict[int, Quotas] = {}  # SET_QUOTA for one domain
        self.owned: Counter[int] = Counter(n.perms.owner for n in self.nodes.values())
        self.targets: dict[int, int] = {}  # SET_TARGET: a domain acting for another
        self.generation = 0
        self.transactions: dict[int, Transaction] = {}
        self._next_tx = 1
        self.changed: list[Change] = []  # for the watches
        self.effects: list[tuple[bytes, Node | None]] = []  # node states, for the journal

    # -- helpers ---------------------------------------------------------------------

    def _tick(self) -> int:
        self.generation += 1
        return self.generation

    def _view(self, tx_id: int) -> View:
        if tx_id == 0:
            return View(self.nodes, changed=self.changed, effects=self.effects,
                        owned=self.owned)
        tx = self.transactions.get(tx_id)
        if tx is None:
            raise XenstoreError("ENOENT", f"no transaction {tx_id}")
        return tx.view()

    def may(self, node: Node, domid: int, want: str) -> bool:
        """Whether unprivileged ``domid`` may ``want`` (``r``/``w``) ``node``: by its own
        rights, or by those of the domain it was made the target of (``SET_TARGET``: a
        device model acts for its guest)."""
        return self.perms_allow(node.perms, domid, want)

    def perms_allow(self, perms: Perms, domid: int, want: str) -> bool:
        if perms.allows(domid, want):
            return True
        target = self.targets.get(domid)
        return target is not None and perms.allows(target, want)

    def _check(self, node: Node, domid: int, privileged: bool, want: str) -> None:
        if not privileged and not self.may(node, domid, want):
            raise XenstoreError("EACCES")

    def _existing(self, view: View, path: bytes, domid: int, privileged: bool,
                  want: str) -> Node:
        node = view.get(path)
        if node is None:
            raise XenstoreError("ENOENT")
        self._check(node, domid, privileged, want)
        return node

    def _create(self, view: View, path: bytes, domid: int, privileged: bool) -> Node:
        """The node at ``path``, made (with its missing parents) if absent; EACCES if a
        parent that must gain a child is not writable by the caller."""
        node = view.get(path)
        if node is not None:
            return node
        parent_path = parent_of(path)
        parent = self._create(view, parent_path, domid, privileged)
        self._check(parent, domid, privileged, "w")
        if not privileged and self.owned[domid] + (
                view.owned[domid] if view.changes is not None else 0) >= \
                self.quotas_for(domid).limit("nodes"):
            raise XenstoreError("ENOSPC", f"domain {domid} owns its quota of nodes")
        generation = self._tick()
        made = Node(b"", replace(parent.perms, owner=domid), frozenset(), generation)
        view.put(path, made)
        view.put(parent_path, replace(parent, children=parent.children | {name_of(path)},
                                      generation=generation))
        return made

    def quotas_for(self, domid: int) -> Quotas:
        """Domain ``domid``'s quotas: its own if set, else the global ones."""
        return self.domain_quotas.get(domid, self.quotas)

    # -- operations ------------------------------------------------------------------

    def read(self, path: bytes, domid: int, privileged: bool, tx_id: int = 0) -> bytes:
        return self._existing(self._view(tx_id), path, domid, privileged, "r").value

    def directory(self, path: bytes, domid: int, privileged: bool, tx_id: int = 0
                  ) -> list[bytes]:
        return sorted(self._existing(self._view(tx_id), path, domid, privileged,
                                     "r").children)

    def get_perms(self, path: bytes, domid: int, privileged: bool, tx_id: int = 0) -> Perms:
        return self._existing(self._view(tx_id), path, domid, privileged, "r").perms

    def write(self, path: bytes, value: bytes, domid: int, privileged: bool,
              tx_id: int = 0) -> None:
        if not privileged and len(value) > self.quotas_for(domid).limit("entry_size"):
            raise XenstoreError("ENOSPC", f"a value of {len(value)} bytes is over the quota")
        view = self._view(tx_id)
        node = self._create(view, path, domid, privileged)
        self._check(node, domid, privileged, "w")
        view.put(path, replace(node, value=value, generation=self._tick()))
        view.changed.append(Change(path))  # one event for the path, not for each parent
        # made on the way, as the C daemon fires: watchers above see the path anyway

    def mkdir(self, path: bytes, domid: int, privileged: bool, tx_id: int = 0) -> None:
        view = self._view(tx_id)
        if view.get(path) is None:  # an existing node: nothing changes, nothing fires
            self._create(view, path, domid, privileged)
            view.changed.append(Change(path))

    def rm(self, path: bytes, domid: int, privileged: bool, tx_id: int = 0) -> None:
        if path == b"/":
            raise XenstoreError("EINVAL", "the root cannot be removed")
        view = self._view(tx_id)
        node = view.get(path)
        if node is None:
            if view.get(parent_of(path)) is None:
                raise XenstoreError("ENOENT")
            return  # removing what is not there, under a parent that is, is no error
        parent = self._existing(view, parent_of(path), domid, privileged, "w")
        self._check(node, domid, privileged, "w")
        generation = self._tick()
        stack, perms = [path], {}
        while stack:
            current = stack.pop()
            gone = view.get(current)
            if gone is not None:
                stack += [current + b"/" + child for child in gone.children]
                perms[current] = gone.perms
            view.put(current, None)
        view.put(parent_of(path), replace(parent, children=parent.children - {name_of(path)},
                                          generation=generation))
        view.changed.append(Change(path, True, perms))

    def set_perms(self, path: bytes, perms: Perms, domid: int, privileged: bool,
                  tx_id: int = 0) -> None:
        view = self._view(tx_id)
        node = self._existing(view, path, domid, privileged, "w")
        if not privileged and node.perms.owner not in (domid, self.targets.get(domid)):
            raise XenstoreError("EPERM", "only the owner changes permissions")
        view.put(path, replace(node, perms=perms, generation=self._tick()))
        view.changed.append(Change(path, False, {path: node.perms}))

    # -- transactions ----------------------------------------------------------------

    def transaction_start(self, domid: int) -> int:
        tx_id = self._next_tx
        self._next_tx = self._next_tx % 0xFFFFFFFF + 1
        self.transactions[tx_id] = Transaction(tx_id, domid, dict(self.nodes))
        return tx_id

    def transaction_end(self, tx_id: int, commit: bool) -> None:
        """End ``tx_id``: apply its changes if ``commit`` and nothing it relied on changed
        meanwhile, else EAGAIN (and nothing of it is applied)."""
        tx = self.transactions.pop(tx_id, None)
        if tx is None:
            raise XenstoreError("ENOENT", f"no transaction {tx_id}")
        if not commit:
            return
        for path, generation in tx.seen.items():
            now = self.nodes.get(path)
            if (now.generation if now is not None else -1) != generation:
                raise XenstoreError("EAGAIN")
        for path, node in tx.changes.items():
            count(self.owned, self.nodes.get(path), node)
            if node is None:
                self.nodes.pop(path, None)
            else:
                self.nodes[path] = node
            self.effects.append((path, node))
        self.changed += tx.changed
