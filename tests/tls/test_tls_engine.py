"""The engine against itself, in memory: every suite, group and certificate type, plus
HRR, resumption, KeyUpdate, padding, record_size_limit, close_notify and the alerts that
certificate validation and protocol violations must produce."""

from __future__ import annotations

import time

import pytest
from fata.tls import (
    AlertDescription,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyUpdateReceived,
    SessionTicketReceived,
    TLSClient,
    TLSServer,
    TLSUsageError,
)
from fata.tls.groups import GROUP_NAMES, SECP256R1, SECP384R1, SECP521R1, X448, X25519
from fata.tls.suites import (
    TLS_AES_128_CCM_8_SHA256,
    TLS_AES_128_CCM_SHA256,
    TLS_AES_128_GCM_SHA256,
    TLS_AES_256_GCM_SHA384,
    TLS_CHACHA20_POLY1305_SHA256,
)

from ._helpers import certified, client_config, tls_config
from ._pair import closed_alert, pump

NOW = time.time()
KINDS = ["rsa", "p256", "p384", "ed25519"]


def complete(events):
    return next(e for e in events if isinstance(e, HandshakeComplete))


def data(events) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ApplicationData))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "suite",
    [
        TLS_AES_128_GCM_SHA256,
        TLS_AES_256_GCM_SHA384,
        TLS_CHACHA20_POLY1305_SHA256,
        TLS_AES_128_CCM_SHA256,
        TLS_AES_128_CCM_8_SHA256,
    ],
)
@pytest.mark.parametrize("group", [X25519, SECP256R1, SECP384R1, X448, SECP521R1])
def test_full_handshake_matrix(pki, trust, kind, suite, group):
    server = TLSServer(
        tls_config(certificates=[certified(pki, kind)], cipher_suites=(suite,)), now=NOW
    )
    client = TLSClient(
        client_config(trust, cipher_suites=(suite,), groups=(group,)), "localhost", now=NOW
    )
    cev, sev = pump(client, server)
    hc = complete(cev)
    assert complete(sev).cipher == hc.cipher
    assert hc.version == "TLSv1.3" and not hc.resumed
    assert hc.group == GROUP_NAMES[group]
    payload = bytes(range(256)) * 300
    client.send_application_data(payload)
    server.send_application_data(b"pong")
    cev, sev = pump(client, server)
    assert data(sev) == payload and data(cev) == b"pong"


def test_sni_selects_certificate(pki, trust):
    rsa, p256 = certified(pki, "rsa"), certified(pki, "p256")
    p256.names = ["other.test"]
    cfg = tls_config(certificates=[rsa, p256])
    server = TLSServer(cfg, now=NOW)
    client = TLSClient(client_config(trust, verify_peer=False), "other.test", now=NOW)
    cev, _ = pump(client, server)
    assert complete(cev).signature_scheme == "ecdsa_secp256r1_sha256"
    server = TLSServer(cfg, now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    cev, _ = pump(client, server)
    assert complete(cev).signature_scheme.startswith("rsa_pss_rsae")


def test_alpn(pki, trust):
    cfg = tls_config(certificates=[certified(pki, "p256")], alpn_protocols=["h2", "http/1.1"])
    client = TLSClient(client_config(trust, alpn_protocols=["http/1.1"]), "localhost", now=NOW)
    server = TLSServer(cfg, now=NOW)
    cev, sev = pump(client, server)
    assert complete(cev).alpn == complete(sev).alpn == "http/1.1"
    client = TLSClient(client_config(trust, alpn_protocols=["spdy"]), "localhost", now=NOW)
    server = TLSServer(cfg, now=NOW)
    cev, sev = pump(client, server)
    assert closed_alert(sev) == AlertDescription.no_application_protocol
    assert closed_alert(cev) == AlertDescription.no_application_protocol


def test_hello_retry_request(pki, trust):
    scfg = tls_config(certificates=[certified(pki, "p256")], groups=(SECP384R1,))
    server = TLSServer(scfg, now=NOW)
    client = TLSClient(client_config(trust, groups=(X25519, SECP384R1)), "localhost", now=NOW)
    cev, sev = pump(client, server)
    assert complete(cev).group == "secp384r1" and complete(sev).group == "secp384r1"
    client.send_application_data(b"after retry")
    assert data(pump(client, server)[1]) == b"after retry"


def test_hrr_cookie_is_checked(pki, trust):
    scfg = tls_config(certificates=[certified(pki, "p256")], groups=(SECP384R1,))
    server = TLSServer(scfg, now=NOW)
    client = TLSClient(client_config(trust, groups=(X25519, SECP384R1)), "localhost", now=NOW)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    ch2 = bytearray(client.data_to_send())
    at = ch2.find(server._cookie)
    assert at > 0
    ch2[at + 40] ^= 0xFF
    assert closed_alert(server.receive_data(bytes(ch2))) == AlertDescription.illegal_parameter


def _ticket(pki, trust, scfg, **ckw):
    client = TLSClient(client_config(trust, **ckw), "localhost", now=NOW)
    server = TLSServer(scfg, now=NOW)
    cev, _ = pump(client, server)
    return [e.ticket for e in cev if isinstance(e, SessionTicketReceived)]


def test_resumption(pki, trust):
    scfg = tls_config(certificates=[certified(pki, "rsa")])
    tickets = _ticket(pki, trust, scfg)
    assert len(tickets) == 2
    for ticket in tickets:
        client = TLSClient(client_config(trust), "localhost", session=ticket, now=NOW + 5)
        server = TLSServer(scfg, now=NOW + 5)
        cev, sev = pump(client, server)
        assert complete(cev).resumed and complete(sev).resumed
        client.send_application_data(b"resumed")
        assert data(pump(client, server)[1]) == b"resumed"


def test_resumption_refused_for_other_server_or_expired(pki, trust):
    scfg = tls_config(certificates=[certified(pki, "p256")], ticket_lifetime=60)
    ticket = _ticket(pki, trust, scfg)[0]
    other = tls_config(certificates=[certified(pki, "p256")])  # different ticket key
    for cfg, when in ((other, NOW + 1), (scfg, NOW + 59.5)):
        client = TLSClient(client_config(trust), "localhost", session=ticket, now=NOW + 1)
        server = TLSServer(cfg, now=when + 1)
        cev, _ = pump(client, server)
        assert not complete(cev).resumed


def test_resumption_after_hrr(pki, trust):
    scfg = tls_config(certificates=[certified(pki, "p256")], groups=(SECP384R1,))
    ticket = _ticket(pki, trust, scfg, groups=(SECP384R1,))[0]
    client = TLSClient(
        client_config(trust, groups=(X25519, SECP384R1)), "localhost", session=ticket, now=NOW + 1
    )
    server = TLSServer(scfg, now=NOW + 1)
    cev, sev = pump(client, server)
    assert complete(cev).resumed and complete(sev).group == "secp384r1"


def test_key_update_both_ways(pki, trust):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    pump(client, server)
    for _ in range(3):
        client.key_update(request_peer_update=True)
        client.send_application_data(b"c")
        cev, sev = pump(client, server)
        assert KeyUpdateReceived(True) in sev and KeyUpdateReceived(False) in cev
        server.key_update(request_peer_update=False)
        server.send_application_data(b"s")
        cev, sev = pump(client, server)
        assert data(cev) == b"s" and KeyUpdateReceived(False) in cev


def test_padding_and_record_size_limit(pki, trust):
    scfg = tls_config(certificates=[certified(pki, "p256")], pad_to=512)
    server = TLSServer(scfg, now=NOW)
    client = TLSClient(client_config(trust, record_size_limit=1025), "localhost", now=NOW)
    pump(client, server)
    server.send_application_data(b"x" * 5000)
    wire = server.data_to_send()
    sizes = []
    pos = 0
    while pos < len(wire):
        n = int.from_bytes(wire[pos + 3 : pos + 5], "big")
        sizes.append(n)
        pos += 5 + n
    assert all(s - 16 <= 1024 for s in sizes), sizes  # limit counts the type byte
    assert all((s - 16) % 512 == 0 for s in sizes), sizes  # padded to 512-byte blocks
    assert data(client.receive_data(wire)) == b"x" * 5000


def test_close_notify(pki, trust):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    pump(client, server)
    client.close()
    cev, sev = pump(client, server)
    assert sev[-1] == ConnectionClosed(None, True, reason="close_notify")
    assert isinstance(cev[-1], ConnectionClosed) and cev[-1].alert is None
    with pytest.raises(TLSUsageError):
        client.send_application_data(b"late")


def test_truncation_is_reported(pki, trust):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    pump(client, server)
    (ev,) = server.receive_data(b"")
    assert isinstance(ev, ConnectionClosed) and ev.truncated


@pytest.mark.parametrize(
    ("name", "kind", "alert"),
    [
        ("wrong.test", "p256", AlertDescription.bad_certificate),
        ("localhost", "expired", AlertDescription.certificate_expired),
        ("a.wild.test", "rsa", None),
        ("127.0.0.1", "p256", None),
    ],
)
def test_certificate_validation(pki, trust, name, kind, alert):
    server = TLSServer(tls_config(certificates=[certified(pki, kind)]), now=NOW)
    client = TLSClient(client_config(trust), name, now=NOW)
    cev, sev = pump(client, server)
    if alert is None:
        assert complete(cev)
    else:
        assert closed_alert(cev) == alert
        assert closed_alert(sev) == alert  # the server received our alert


def test_unknown_ca(pki, trust):
    import tempfile

    from ._certgen import make_pki

    with tempfile.TemporaryDirectory() as d:
        other = make_pki(d)
        server = TLSServer(tls_config(certificates=[certified(other, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    cev, _ = pump(client, server)
    assert closed_alert(cev) == AlertDescription.unknown_ca


def test_tampered_record_is_bad_record_mac(pki, trust):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    pump(client, server)
    client.send_application_data(b"secret")
    wire = bytearray(client.data_to_send())
    wire[-1] ^= 1
    assert closed_alert(server.receive_data(bytes(wire))) == AlertDescription.bad_record_mac
    alert = server.data_to_send()
    assert client.receive_data(alert)[-1].alert == AlertDescription.bad_record_mac


def test_bad_finished_is_decrypt_error(pki, trust):
    server = TLSServer(tls_config(certificates=[certified(pki, "p256")]), now=NOW)
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    first = 5 + int.from_bytes(flight[3:5], "big")  # the ServerHello record
    client.receive_data(flight[:first])
    client._c_hs = bytes(len(client._c_hs))
    client.receive_data(flight[first:])
    assert closed_alert(server.receive_data(client.data_to_send())) == (
        AlertDescription.decrypt_error
    )


def test_send_before_handshake_is_usage_error(pki, trust):
    client = TLSClient(client_config(trust), "localhost", now=NOW)
    with pytest.raises(TLSUsageError):
        client.send_application_data(b"early")
    with pytest.raises(ValueError):
        TLSClient(client_config(trust), "localhost")  # no time for validation


def test_retry_hello_must_not_change(pki, trust):
    import dataclasses

    scfg = tls_config(certificates=[certified(pki, "p256")], groups=(SECP384R1,))
    server = TLSServer(scfg, now=NOW)
    ccfg = client_config(trust, groups=(X25519, SECP384R1))
    client = TLSClient(ccfg, "localhost", now=NOW)
    server.receive_data(client.data_to_send())
    client.config = dataclasses.replace(ccfg, signature_schemes=(0x0804,))  # changes CH2
    client.receive_data(server.data_to_send())
    assert closed_alert(server.receive_data(client.data_to_send())) == (
        AlertDescription.illegal_parameter
    )
