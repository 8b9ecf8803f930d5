"""RFC 8448 (Example Handshake Traces for TLS 1.3), section 3 "Simple 1-RTT Handshake" and
the PSK binder of section 4, reproduced byte for byte where the protocol is deterministic.

The server's ServerHello comes out of our server fed the RFC's ClientHello and randomness;
our client, fed the RFC's randomness and server flight, produces the RFC's client Finished
and derives the RFC's resumption PSK.  (The RFC's CertificateVerify is RSA-PSS, which is
randomised, so a server flight cannot be byte-identical; the client checks it instead.)
"""

from __future__ import annotations

import pytest
from fata.tls import HandshakeComplete, SessionTicketReceived, TLSClient, TLSConfig, TLSServer
from fata.tls.keyschedule import KeySchedule, traffic_keys
from fata.tls.record import Protection13
from fata.tls.suites import SUITES

from ._helpers import certified

H = bytes.fromhex
SUITE = SUITES[0x1301]

CLIENT_HELLO = H(
    "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113"
    "031302010000910000000b0009000006736572766572ff01000100000a00140012001d001700180019010001"
    "0101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae"
    "4d5413691e529aaf2c002b0003020304000d0020001e04030503060302030804080508060401050106010201"
    "0402050206020202002d00020101001c00024001"
)
SERVER_HELLO = H(
    "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e"
    "00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b0002"
    "0304"
)
ENCRYPTED_EXTENSIONS = H(
    "080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000"
)
CERTIFICATE = H(
    "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a864886f70d01010b0500300e"
    "310c300a06035504031303727361301e170d3136303733303031323335395a170d3236303733303031323335"
    "395a300e310c300a0603550403130372736130819f300d06092a864886f70d010101050003818d0030818902"
    "818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826d3901a2461eafd2de49a91d015abbc9a"
    "95137ace6c1af19eaa6af98c7ced43120998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda43"
    "0846748030530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f02"
    "03010001a31a301830090603551d1304023000300b0603551d0f0404030205a0300d06092a864886f70d0101"
    "0b05000381810085aad2a0e5b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a5"
    "8c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102702e608ccae6bec1fc63a42a"
    "99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b4"
    "2b4de10000"
)
CERTIFICATE_VERIFY = H(
    "0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145ab3ff52f1fda8477b0b7abc90"
    "db78e2d33a5c141a078653fa6bef780c5ea248eeaaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac"
    "027671459e46445c9ea58c181e818e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea20d53dfac"
    "d42f74f3"
)
SERVER_FINISHED = H("140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718")
CLIENT_FINISHED = H("14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
NEW_SESSION_TICKET = H(
    "040000c90000001efad6aac502000000b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb"
    "33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64"
    "e861be7fd61d2827db279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2"
    "677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac5c03272e970727c621a79141ef5f"
    "7de6505e5bfbc388e93343694093934ae4d3570008002a000400000400"
)
CLIENT_PRIVATE = H("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005")
CLIENT_RANDOM = CLIENT_HELLO[6:38]
SERVER_PRIVATE = H("b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e")
SERVER_RANDOM = SERVER_HELLO[6:38]

C_HS = H("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
S_HS = H("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
C_AP = H("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
S_AP = H("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
EXPORTER = H("fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50")
RES_MASTER = H("7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
PSK = H("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
SHARED = H("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")

# Section 4: the resumed ClientHello up to (not including) its binders, and the binder.
RESUMED_CH_PREFIX = H(
    "010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d95000006130113"
    "031302010001cd0000000b0009000006736572766572ff01000100000a00140012001d001700180019010001"
    "01010201030104003300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4"
    "f18d668f0b002a0000002b0003020304000d0020001e04030503060302030804080508060401050106010201"
    "0402050206020202002d00020101001c00024001001500570000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000002900dd00b800b22c035d829359ee5ff7af4ec900"
    "000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a98211"
    "7283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3664d4e6da4d29ee03725a6a4"
    "dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac"
    "5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb"
)
BINDER = H("3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")


def scripted(*chunks: bytes):
    """A random source that returns exactly these values, in this order."""
    queue = list(chunks)

    def random(n: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == n, (len(value), n)
        return value

    return random


# Ticket and cookie keys given, so the config draws nothing from the scripted source: the
# handshake gets exactly the RFC's values.
UNUSED_KEYS = {"ticket_key": bytes(32), "cookie_key": bytes(32)}


def record(content_type: int, body: bytes) -> bytes:
    return bytes((content_type, 3, 3)) + len(body).to_bytes(2, "big") + body


def test_key_schedule():
    ks = KeySchedule(SUITE)
    th = CLIENT_HELLO + SERVER_HELLO
    assert ks.enter_handshake(SHARED, th) == (C_HS, S_HS)
    assert traffic_keys(SUITE, S_HS) == (
        H("3fce516009c21727d0f2e4e86ee403bc"),
        H("5d313eb2671276ee13000b30"),
    )
    assert traffic_keys(SUITE, C_HS) == (
        H("dbfaa693d1762c5b666af5d950258d01"),
        H("5bd3c71b836e0b76bb73265f"),
    )
    th += ENCRYPTED_EXTENSIONS + CERTIFICATE + CERTIFICATE_VERIFY
    assert ks.finished_mac(S_HS, ks.transcript_hash(th)) == SERVER_FINISHED[4:]
    th += SERVER_FINISHED
    assert ks.enter_application(th) == (C_AP, S_AP)
    assert ks.exporter_master == EXPORTER
    assert traffic_keys(SUITE, S_AP) == (
        H("9f02283b6c9c07efc26bb9f2ac92e356"),
        H("cf782b88dd83549aadf1e984"),
    )
    assert ks.finished_mac(C_HS, ks.transcript_hash(th)) == CLIENT_FINISHED[4:]
    th += CLIENT_FINISHED
    assert traffic_keys(SUITE, C_AP) == (
        H("17422dda596ed5d9acd890e3c63f5051"),
        H("5b78923dee08579033e523d9"),
    )
    assert ks.resumption_master(th) == RES_MASTER
    assert ks.ticket_psk(RES_MASTER, b"\x00\x00") == PSK


def test_psk_binder():
    ks = KeySchedule(SUITE, PSK)
    assert ks.early_secret == H("9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
    assert ks.binder_key() == H("69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
    assert ks.finished_mac(ks.binder_key(), ks.transcript_hash(RESUMED_CH_PREFIX)) == BINDER


def test_server_hello_byte_for_byte(pki):
    cfg = TLSConfig(
        certificates=[certified(pki, "rsa")],
        random=scripted(SERVER_PRIVATE, SERVER_RANDOM),
        session_tickets=0,
        **UNUSED_KEYS,
    )
    server = TLSServer(cfg, now=0.0)
    assert server.receive_data(record(22, CLIENT_HELLO)) == []
    out = server.data_to_send()
    assert out[: 5 + len(SERVER_HELLO)] == record(22, SERVER_HELLO)
    assert server._c_hs == C_HS
    rest = out[5 + len(SERVER_HELLO) :]
    ct, flight = Protection13(SUITE, S_HS).open(rest[:5], rest[5:])  # the RFC's server keys
    assert ct == 22 and flight[0] == 8  # EncryptedExtensions first


@pytest.fixture
def rfc_client() -> TLSClient:
    cfg = TLSConfig(
        verify_peer=False,
        middlebox_compat=False,
        random=scripted(CLIENT_RANDOM, CLIENT_PRIVATE),
        **UNUSED_KEYS,
    )
    client = TLSClient(cfg, "server", now=0.0)
    ours = client.data_to_send()
    assert ours[11:43] == CLIENT_RANDOM
    assert bytes.fromhex("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c") in ours
    # Our ClientHello carries other extensions than the RFC's client; the trace continues
    # from the RFC's hello, so that is the transcript.
    client.transcript = bytearray(CLIENT_HELLO)
    return client


def test_client_trace(rfc_client):
    client = rfc_client
    assert client.receive_data(record(22, SERVER_HELLO)) == []
    assert client._c_hs == C_HS
    flight = ENCRYPTED_EXTENSIONS + CERTIFICATE + CERTIFICATE_VERIFY + SERVER_FINISHED
    events = client.receive_data(Protection13(SUITE, S_HS).seal(22, flight))
    hc = next(e for e in events if isinstance(e, HandshakeComplete))
    assert hc.signature_scheme == "rsa_pss_rsae_sha256" and hc.cipher == SUITE.name
    wire = client.data_to_send()
    # The RFC's record: 17 03 03 00 35 + ciphertext of the client Finished.
    expected = Protection13(SUITE, C_HS).seal(22, CLIENT_FINISHED)
    assert wire == expected
    assert Protection13(SUITE, C_HS).open(wire[:5], wire[5:]) == (22, CLIENT_FINISHED)
    events = client.receive_data(Protection13(SUITE, S_AP).seal(22, NEW_SESSION_TICKET))
    (ticket_event,) = [e for e in events if isinstance(e, SessionTicketReceived)]
    ticket = ticket_event.ticket
    assert ticket.psk == PSK
    assert ticket.lifetime == 30 and ticket.age_add == 0xFAD6AAC5
    assert ticket.ticket == NEW_SESSION_TICKET[17 : 17 + 0xB2]
    assert ticket.max_early_data == 0x400


def test_client_record_matches_rfc_bytes(rfc_client):
    """Spot-check against the literal RFC record for the client Finished."""
    client = rfc_client
    client.receive_data(record(22, SERVER_HELLO))
    flight = ENCRYPTED_EXTENSIONS + CERTIFICATE + CERTIFICATE_VERIFY + SERVER_FINISHED
    client.receive_data(Protection13(SUITE, S_HS).seal(22, flight))
    assert client.data_to_send() == H(
        "1703030035"
        "75ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46"
        "deb384bd1caeacab6867d726c40546"
    )
