"""Hostile or malformed input gets the alert the RFCs (and tlsfuzzer) prescribe, and the
engine closes instead of raising."""

from __future__ import annotations

import time

import pytest
from fata.tls import AlertDescription, ConnectionClosed, TLSClient, TLSServer
from fata.tls import extensions as X
from fata.tls.states import ServerState
from fata.tls.suites import TLS12

from ._hello import client_hello, tls12_extensions, tls13_extensions, x25519_share
from ._helpers import certified, client_config, tls_config
from ._pair import closed_alert

NOW = time.time()
A = AlertDescription


@pytest.fixture(scope="module")
def scfg(pki):
    return tls_config(certificates=[certified(pki, "p256")])


def sent_alert(server: TLSServer) -> int:
    """The description of the (plaintext) fatal alert the server wrote."""
    out = server.data_to_send()
    assert out[-7:-2] == b"\x15\x03\x03\x00\x02", out[-7:]
    return out[-1]


@pytest.mark.parametrize(
    ("hello", "alert"),
    [
        (
            client_hello(tls12_extensions(), suites=(0xC02B,), legacy_version=0x0302),
            A.protocol_version,
        ),
        (
            client_hello(tls12_extensions(), suites=(0xC02B,), legacy_version=0x0301),
            A.protocol_version,
        ),
        (client_hello(None, suites=(0x002F,), legacy_version=0x0300), A.protocol_version),
        (client_hello(tls13_extensions(), legacy_version=0x0300), A.protocol_version),
        (client_hello(tls13_extensions(versions=(0x7F1C, 0x0302))), A.protocol_version),
        (client_hello(tls13_extensions(), suites=(0x1305,)), A.handshake_failure),
        (client_hello(tls13_extensions(groups=(0x0017, 0x0015))), A.illegal_parameter),
        (client_hello(tls13_extensions(groups=(0x0015,), shares=[])), A.illegal_parameter),
        (client_hello(tls13_extensions(groups=(0x0015, 29))), None),  # obsolete one ignored
        (client_hello(tls13_extensions(groups=(0x0100,), shares=[])), A.handshake_failure),
        (client_hello(tls13_extensions(groups=(23,))), A.illegal_parameter),  # share not in groups
        (
            client_hello(tls13_extensions(shares=[(29, x25519_share()), (29, x25519_share())])),
            A.illegal_parameter,
        ),
        (client_hello(tls13_extensions(shares=[(29, b"\x00" * 31)])), A.illegal_parameter),
        (client_hello(tls13_extensions(shares=[(29, b"")])), A.illegal_parameter),
        (client_hello(tls13_extensions(shares=[(29, bytes(32))])), A.illegal_parameter),
        (client_hello(tls13_extensions(extra=X.ext(X.SUPPORTED_GROUPS))), A.illegal_parameter),
        (client_hello(tls13_extensions(extra=X.ext(X.ALPN, b"\x00\x00"))), A.decode_error),
        (
            client_hello(tls13_extensions(extra=X.ext(X.PRE_SHARED_KEY, b"\x00"))),
            A.decode_error,
        ),
        (client_hello(tls13_extensions(), suites=(0x1301, 0x5600)), None),  # 1.3: SCSV harmless
        (client_hello(tls12_extensions(), suites=(0xC02B, 0x5600)), A.inappropriate_fallback),
        (client_hello(tls12_extensions(groups=(0x0100,)), suites=(0xC02B,)), A.handshake_failure),
        (client_hello(tls12_extensions(), suites=(0x002F, 0x0035)), A.handshake_failure),
    ],
)
def test_client_hello_alerts(scfg, hello, alert):
    server = TLSServer(scfg, now=NOW)
    events = server.receive_data(hello)
    if alert is None:
        assert not any(isinstance(e, ConnectionClosed) for e in events)
        return
    assert closed_alert(events) == alert, server.error
    assert sent_alert(server) == alert


def test_unknown_and_status_request_extensions_are_ignored(scfg):
    extra = X.ext(0x7A7A, b"grease") + X.ext(X.STATUS_REQUEST, b"\x01\x00\x00\x00\x00")
    extra += X.ext(X.SCT) + X.ext(X.SESSION_TICKET)
    server = TLSServer(scfg, now=NOW)
    assert server.receive_data(client_hello(tls13_extensions(extra=extra))) == []
    assert server.state is ServerState.WAIT_FINISHED
    server = TLSServer(scfg, now=NOW)
    assert server.receive_data(client_hello(tls12_extensions(extra=extra), suites=(0xC02B,))) == []
    assert server.state is ServerState.TLS12_WAIT_CKE


@pytest.mark.parametrize(
    ("records", "alert"),
    [
        (b"\x15\x03\x03\x00\x00", A.unexpected_message),  # empty alert
        (b"\x16\x03\x03\x00\x00", A.unexpected_message),  # empty handshake record
        (b"\x17\x03\x03\x00\x01x", A.unexpected_message),  # data before the handshake
        (b"\x16\x03\x03\x40\x01" + bytes(0x4001), A.record_overflow),
        (b"\x18\x03\x03\x00\x01x", A.unexpected_message),  # unknown content type
        (b"\x16\x03\x03\x00\x04\x01\x02\x00\x01", A.decode_error),  # 128 KiB + 1 message
        (b"\x16\x03\x03\x00\x04\x02\x00\x00\x00", A.unexpected_message),  # ServerHello to server
        (b"\x14\x03\x03\x00\x01\x01", A.unexpected_message),  # CCS before ClientHello
        (b"\x80\x2e\x01\x03\x01", A.unexpected_message),  # SSLv2 hello
    ],
)
def test_record_layer_alerts(scfg, records, alert):
    server = TLSServer(scfg, now=NOW)
    assert closed_alert(server.receive_data(records)) == alert


def test_early_data_skipped_after_retry(pki):
    cfg = tls_config(certificates=[certified(pki, "p256")], groups=(24,))
    server = TLSServer(cfg, now=NOW)
    hello = client_hello(
        tls13_extensions(groups=(29, 24), extra=X.ext(X.EARLY_DATA)),
        session_id=bytes(32),
    )
    garbage = b"\x17\x03\x03\x01\x00" + bytes(256)
    assert server.receive_data(hello + garbage * 3) == []
    assert server.state is ServerState.WAIT_CH2
    server2 = TLSServer(cfg, now=NOW)
    hello2 = client_hello(tls13_extensions(groups=(29, 24)), session_id=bytes(32))
    server2.receive_data(hello2)
    assert closed_alert(server2.receive_data(garbage)) == A.unexpected_message


def test_downgrade_sentinel_and_tls12_only_server(pki, trust):
    """A TLS 1.2 answer to our 1.3-only client is refused; with the RFC 8446 sentinel in
    the server random it is illegal_parameter (a downgrade attack), else protocol_version."""
    for max_version, alert in ((0x0304, A.illegal_parameter), (TLS12, A.protocol_version)):
        scfg = tls_config(certificates=[certified(pki, "p256")], max_version=max_version)
        client = TLSClient(client_config(trust), "localhost", now=NOW)
        server = TLSServer(scfg, now=NOW)
        server.receive_data(client_hello(tls12_extensions(), suites=(0xC02B,)))
        assert server.version == TLS12
        assert closed_alert(client.receive_data(server.data_to_send())) == alert
