"""The engine's sans-IO contract: randomness only from ``TLSConfig.random``, time only from
what callers pass in, and handshake states that move only along their transition tables."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import fata.tls
import pytest
from fata.tls import AlertDescription, TLSAlert, TLSClient, TLSConfig, TLSServer
from fata.tls.states import CLIENT_TRANSITIONS, SERVER_TRANSITIONS, ClientState, ServerState

from ._helpers import certified, client_config, tls_config
from ._pair import pump

NOW = time.time()
TLS_DIR = Path(fata.tls.__file__).parent
# What would let an engine module reach the host: sockets, clocks, the kernel's randomness.
FORBIDDEN_MODULES = {"os", "time", "socket", "random", "secrets", "selectors", "ssl"}


def test_config_requires_a_random_source():
    with pytest.raises(TypeError):
        TLSConfig()  # type: ignore[call-arg]


def test_ticket_and_cookie_keys_come_from_the_random_source():
    drawn: list[int] = []

    def source(n: int) -> bytes:
        drawn.append(n)
        return bytes((len(drawn),)) * n

    cfg = TLSConfig(random=source)
    assert drawn == [32, 32]
    assert cfg.ticket_key == b"\x01" * 32 and cfg.cookie_key == b"\x02" * 32
    drawn.clear()
    given = TLSConfig(random=source, ticket_key=b"t" * 32, cookie_key=b"c" * 32)
    assert drawn == [] and given.ticket_key == b"t" * 32


@pytest.mark.parametrize("path", sorted(TLS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_host_clock_or_randomness_in_fata_tls(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            names = set()
        assert not names & FORBIDDEN_MODULES, f"{path.name}:{node.lineno} imports {names}"
        if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
            owner = ast.unparse(node.value)
            assert not owner.endswith(("datetime", "date")), f"{path.name}:{node.lineno}"


def test_transition_tables_cover_every_state():
    for table, states in ((SERVER_TRANSITIONS, ServerState), (CLIENT_TRANSITIONS, ClientState)):
        assert set(table) == set(states)
        assert all(nxt <= set(states) for nxt in table.values())


def test_handshake_walks_the_tables(pki, trust):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    assert (server.state, client.state) == (ServerState.WAIT_CH, ClientState.WAIT_SH)
    pump(client, server)
    assert (server.state, client.state) == (ServerState.CONNECTED, ClientState.CONNECTED)


def test_a_move_outside_the_table_is_refused(pki):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    with pytest.raises(TLSAlert) as exc:
        server._to(ServerState.CONNECTED)
    assert exc.value.description == AlertDescription.internal_error
    assert server.state is ServerState.WAIT_CH
