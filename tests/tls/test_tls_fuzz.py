"""Hypothesis fuzzing of the record layer, handshake parsers and both state machines:
malformed input must end in an alert (never ``internal_error``, which would mean an
unexpected exception inside the engine) and never in an exception escaping to the caller."""

from __future__ import annotations

import random
import time

import pytest
from fata.tls import AlertDescription, ConnectionClosed, TLSAlert, TLSClient, TLSServer
from fata.tls.messages import (
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
    parse_tls12_extensions,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._helpers import certified, client_config, tls_config
from ._pair import pump

NOW = time.time()
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def scfg(pki):
    return tls_config(certificates=[certified(pki, "p256")])


@pytest.fixture(scope="module")
def client_hello(trust) -> bytes:
    return TLSClient(client_config(trust), "localhost", now=NOW).data_to_send()


def fixed_client(trust) -> TLSClient:
    """A client whose randomness (and so key share) is the same every time."""
    rng = random.Random(8446)
    cfg = client_config(trust, verify_peer=False, random=rng.randbytes)
    return TLSClient(cfg, "localhost", now=NOW)


@pytest.fixture(scope="module")
def server_flight(scfg, trust):
    client = fixed_client(trust)
    server = TLSServer(scfg, now=NOW)
    ch = client.data_to_send()
    server.receive_data(ch)
    return client, server.data_to_send()


def _no_internal_error(events, conn) -> None:
    for ev in events:
        if isinstance(ev, ConnectionClosed) and ev.alert == AlertDescription.internal_error:
            raise AssertionError(f"internal error: {ev.reason}")
    assert conn.error is None or conn.error.description != AlertDescription.internal_error, (
        conn.error
    )


@FUZZ
@given(st.binary(max_size=2000))
def test_parsers_raise_only_alerts(data):
    for parser in (
        parse_client_hello,
        lambda b: parse_tls12_extensions(parse_client_hello(b)),
        parse_server_hello,
        lambda b: parse_certificate_list(b, True),
        lambda b: parse_certificate_list(b, False),
    ):
        try:
            parser(b"\x01\x00\x00\x00" + data)
        except TLSAlert:
            pass


@FUZZ
@given(st.binary(max_size=3000))
def test_server_random_bytes(scfg, data):
    server = TLSServer(scfg, now=NOW)
    events = server.receive_data(data)
    _no_internal_error(events, server)


@FUZZ
@given(st.binary(min_size=1, max_size=600))
def test_server_random_handshake_records(scfg, body):
    server = TLSServer(scfg, now=NOW)
    record = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
    _no_internal_error(server.receive_data(record), server)


def _mutate(data: bytes, draw) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        i = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[i] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "cut":
            del out[i:]
        else:
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(out)


@FUZZ
@given(st.data())
def test_server_mutated_client_hello(scfg, client_hello, data):
    mutated = _mutate(client_hello, data.draw)
    server = TLSServer(scfg, now=NOW)
    events = server.receive_data(mutated)
    _no_internal_error(events, server)


@FUZZ
@given(st.data())
def test_server_mutated_client_hello_in_fragments(scfg, client_hello, data):
    """The ClientHello body re-framed into records of random sizes, then mutated."""
    body = client_hello[5:]
    records = b""
    pos = 0
    while pos < len(body):
        n = data.draw(st.integers(1, 300))
        chunk = body[pos : pos + n]
        records += b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
        pos += n
    if data.draw(st.booleans()):
        records = _mutate(records, data.draw)
    server = TLSServer(scfg, now=NOW)
    events = server.receive_data(records)
    _no_internal_error(events, server)


@FUZZ
@given(st.data())
def test_client_mutated_server_flight(server_flight, trust, data):
    _, flight = server_flight
    client = fixed_client(trust)  # same key share: the flight decrypts unless mutated
    mutated = _mutate(flight, data.draw)
    events = client.receive_data(mutated)
    _no_internal_error(events, client)


def test_fixed_client_completes_with_recorded_flight(server_flight, trust):
    """Guard for the test above: unmutated, the recorded flight completes a handshake."""
    from fata.tls import HandshakeComplete

    client = fixed_client(trust)
    assert any(isinstance(e, HandshakeComplete) for e in client.receive_data(server_flight[1]))


@FUZZ
@given(st.data())
def test_established_connection_random_records(scfg, trust, data):
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    server = TLSServer(scfg, now=NOW)
    pump(client, server)
    client.send_application_data(b"hello")
    wire = client.data_to_send()
    junk = data.draw(st.one_of(st.binary(max_size=200), st.just(wire)))
    events = server.receive_data(_mutate(wire + junk, data.draw))
    _no_internal_error(events, server)
