"""The running appliance (``python -m fata run appliances/dns``), queried with dig and dnspython.

The ``app`` cases run on both stacks: host sockets on loopback, and Fata's own TCP/IP on the
default TAP inside a network namespace made here (the test joins it for the module)."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from dnstest_util import (
    APPLIANCE_STACKS,
    EXAMPLE_ZONE,
    LAB_ZONE,
    OTHER_ZONE,
    RunningAppliance,
    appliance_on,
    query,
    read_tcp,
    rrs,
    rss_kb,
    wait_until,
)

BIG_ZONE = "$ORIGIN big.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n" + "".join(
    f"many A 10.1.0.{i}\n" for i in range(1, 61))
IDLE = 1.5
MAX_CONN = 4


def write_zones(directory: Path) -> list[Path]:
    """The example zone plus the test zones, as files for ``--zone``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"example.zone": EXAMPLE_ZONE.read_text(), "lab.zone": LAB_ZONE,
             "net.zone": OTHER_ZONE, "big.zone": BIG_ZONE}
    paths = []
    for name, text in files.items():
        (directory / name).write_text(text)
        paths.append(directory / name)
    return paths


def zone_args(paths: list[Path]) -> list[str]:
    return [arg for p in paths for arg in ("--zone", str(p))]


@pytest.fixture(scope="module", params=APPLIANCE_STACKS)
def app(request, tmp_path_factory):
    """The appliance on ``request.param``'s stack; ``client`` is the address tests ask from
    (allowed to transfer zones), ``other`` a second one of ours (not allowed)."""
    net = request.param
    tmp = tmp_path_factory.mktemp(f"dns-app-{net}")
    paths = write_zones(tmp / "zones")
    client, other = ("127.0.0.1", "127.0.0.2") if net == "socket" else ("10.77.0.1", "10.77.0.5")
    args = [*zone_args(paths), "--axfr-allow", f"{client}/32", "--tcp-idle-timeout", str(IDLE),
            "--tcp-max-connections", str(MAX_CONN)]
    with appliance_on(net, args, tmp, host_addresses=(other,)) as a:
        a.client, a.other = client, other
        yield a


def dig(app: RunningAppliance, *args: str) -> str:
    """dig's output for a question to the appliance (tests calling it carry ``tool("dig")``)."""
    out = subprocess.run(["dig", f"@{app.host}", "-p", str(app.port), "+tries=1", "+timeout=2",
                          *args], capture_output=True, text=True, timeout=20)
    return out.stdout


def dig_answer(app: RunningAppliance, *args: str) -> set[str]:
    text = dig(app, "+noall", "+answer", *args)
    return {" ".join(line.split()) for line in text.splitlines() if line.strip()}


@pytest.mark.tool("dig")
def test_dig_answers(app) -> None:
    p = app
    assert dig_answer(p, "www.example.org", "A") == {"www.example.org. 3600 IN A 192.0.2.80"}
    assert dig_answer(p, "shop.example.org", "AAAA") == {
        "shop.example.org. 3600 IN CNAME web.example.org.",
        "web.example.org. 3600 IN CNAME www.example.org.",
        "www.example.org. 3600 IN AAAA 2001:db8::80"}
    assert dig_answer(p, "Foo.Apps.Example.Org", "TXT") == {
        'Foo.Apps.Example.Org. 3600 IN TXT "wildcard"'}
    full = dig(p, "+norec", "nothing.example.org", "A")
    assert "status: NXDOMAIN" in full and "flags: qr aa;" in full
    assert "example.org.\t\t300\tIN\tSOA" in full
    full = dig(p, "+norec", "example.com", "A")
    assert "status: REFUSED" in full


@pytest.mark.tool("dig")
def test_dig_referral_and_ds_with_parent_and_child(app) -> None:
    # Both example.org and lab.example.org are served: the child answers for its names,
    # the parent for the DS at the cut.
    full = dig(app, "+norec", "host.lab.example.org", "A")
    assert "flags: qr aa;" in full and "192.0.2.210" in full
    assert "IN\tDS\t12345 13 2" in dig(app, "+norec", "lab.example.org", "DS")


@pytest.mark.tool("dig")
def test_dig_edns_truncation_and_tcp_retry(app) -> None:
    p = app
    full = dig(p, "+norec", "+ignore", "+noedns", "many.big.test", "A")
    assert "flags: qr aa tc;" in full
    full = dig(p, "+ignore", "+bufsize=512", "many.big.test", "A")
    assert " tc" in full.split("flags:")[1].split(";")[0]
    # dig retries over TCP on TC and gets all 60 records.
    assert len(dig_answer(p, "+noedns", "many.big.test", "A")) == 60
    full = dig(p, "+bufsize=4096", "many.big.test", "A")
    assert "udp: 1232" in full and "ANSWER: 60" in full


@pytest.mark.tool("dig")
def test_dig_badvers_and_notimp(app) -> None:
    assert "status: BADVERS" in dig(app, "+edns=1", "+noednsnegotiation", "www.example.org")
    full = dig(app, "+opcode=2", "www.example.org")  # STATUS
    assert "status: NOTIMP" in full


def test_formerr_for_several_opts_and_dropped_garbage(app) -> None:
    """Each malformed datagram gets what RFC 1035/6891 give it: FORMERR (with the ID) when
    the header can be read and says "query", nothing at all otherwise.  After each one a
    good query is asked on the same socket: the next datagram back must be the FORMERR or,
    for the dropped ones, that query's own answer (the server answers in order)."""
    q = dns.message.make_query("www.example.org", "A", use_edns=0).to_wire()
    plain = dns.message.make_query("www.example.org", "A", use_edns=False).to_wire()
    formerr = {
        "two OPT records": q[:10] + b"\x00\x02" + q[12:] + q[-11:],
        "header only, QDCOUNT 1": plain[:12],
        "extended label type": plain[:12] + b"\x40abc" + plain[16:],
        "trailing garbage": plain + b"\x00",
    }
    dropped = {
        "empty": b"",
        "one byte": b"\x00",
        "short of a header": bytes(range(11)),
        "a response (QR set)": b"\xff" * 300,
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for n, (label, junk) in enumerate({**formerr, **dropped}.items()):
            probe = dns.message.make_query("mail.example.org", "A")
            probe.id = 0x4000 + n
            s.sendto(junk, (app.host, app.port))
            s.sendto(probe.to_wire(), (app.host, app.port))
            reply = dns.message.from_wire(s.recv(4096))
            if label in formerr:
                assert reply.id == int.from_bytes(junk[:2], "big"), label
                assert reply.rcode() == dns.rcode.FORMERR and reply.flags & dns.flags.QR, label
                reply = dns.message.from_wire(s.recv(4096))
            assert reply.id == probe.id, f"{label}: answered ({reply.rcode()}), not dropped"
            assert rrs(reply.answer) == {"mail.example.org. 3600 A 192.0.2.25"}, label


def test_tcp_pipelining_several_queries_one_connection(app) -> None:
    names = ["www.example.org", "mail.example.org", "nope.example.org", "shop.example.org"]
    qs = [dns.message.make_query(n, "A") for n in names]
    with socket.create_connection((app.host, app.port), timeout=3) as s:
        # All four in one write: the server must answer each, in order.
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in qs)))
        answers = [read_tcp(s) for _ in qs]
        # And the connection stays usable for more.
        q5 = dns.message.make_query("ns1.example.org", "AAAA")
        w5 = q5.to_wire()
        s.sendall(struct.pack("!H", len(w5)) + w5)
        answers.append(read_tcp(s))
    assert [a.id for a in answers] == [q.id for q in qs] + [q5.id]
    assert answers[2].rcode() == dns.rcode.NXDOMAIN
    assert rrs(answers[4].answer) == {"ns1.example.org. 3600 AAAA 2001:db8::1"}


@pytest.mark.tool("dig")
def test_dig_tcp_keepopen(app) -> None:
    out = dig(app, "+tcp", "+keepopen", "+noall", "+answer", "www.example.org", "A",
              "mail.example.org", "A")
    assert "192.0.2.80" in out and "192.0.2.25" in out


def test_tcp_idle_timeout(app) -> None:
    with socket.create_connection((app.host, app.port), timeout=IDLE + 5) as s:
        start = time.monotonic()
        try:
            data = s.recv(10)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - start
    assert data == b""
    assert IDLE - 0.3 <= waited < IDLE + 3


def test_tcp_connection_limit(app) -> None:
    conns = []
    try:
        for _ in range(MAX_CONN):
            s = socket.create_connection((app.host, app.port), timeout=3)
            w = dns.message.make_query("www.example.org", "A").to_wire()
            s.sendall(struct.pack("!H", len(w)) + w)
            read_tcp(s)  # the connection is established and counted
            conns.append(s)
        w = dns.message.make_query("www.example.org", "A").to_wire()
        try:  # the one over the limit is reset (Flow.abort), maybe before connect returns
            extra = socket.create_connection((app.host, app.port), timeout=3)
            conns.append(extra)
            extra.sendall(struct.pack("!H", len(w)) + w)
            data = extra.recv(10)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        assert data == b""
    finally:
        for s in conns:
            s.close()
    # room again once the server has seen the closes
    wait_until(lambda: _answers_over_tcp(app), what="room for a connection again")


def _answers_over_tcp(app: RunningAppliance) -> bool:
    try:
        return bool(query(app.port, "www.example.org", tcp=True, host=app.host).answer)
    except (ConnectionError, EOFError, OSError):
        return False


@pytest.mark.tool("dig")
def test_dig_axfr_allowed_and_refused(app) -> None:
    out = dig(app, "example.org", "AXFR")
    lines = [line for line in out.splitlines() if line and not line.startswith(";")]
    assert lines[0].split()[3] == "SOA" and lines[-1].split()[3] == "SOA"
    assert any("www.example.org." in line and "192.0.2.80" in line for line in lines)
    # From another address of ours, not on the allow-list.
    out = dig(app, "-b", app.other, "example.org", "AXFR")
    assert "Transfer failed" in out
    r = dns.query.tcp(dns.message.make_query("example.org", "AXFR"), app.host,
                      port=app.port, source=app.other, timeout=3)
    assert r.rcode() == dns.rcode.REFUSED


@pytest.mark.tool("kdig")
def test_kdig_answers(app) -> None:
    out = subprocess.run(["kdig", f"@{app.host}", "-p", str(app.port), "+tcp", "+noall",
                          "+answer", "example.org", "MX"], capture_output=True, text=True,
                         timeout=20).stdout
    assert "10 mail.example.org." in out and "20 mail2.example.org." in out


def test_zone_error_at_start_is_one_line_and_fatal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text("$ORIGIN bad.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 300.1.2.3\n")
    a = RunningAppliance(["--zone", str(bad)], tmp_path)
    try:
        code = a.proc.wait(90)
    finally:
        a.stop()
    assert code != 0
    errors = [line for line in a.output().splitlines() if "error" in line]
    assert len(errors) == 1 and f"{bad}:5:" in errors[0], a.output()


def test_sighup_reload_notify_and_bad_reload(tmp_path: Path) -> None:
    zone = tmp_path / "r.zone"
    text = ("$ORIGIN reload.test.\n$TTL 60\n@ SOA ns hm {serial} 2 3 4 5\n@ NS ns\n"
            "ns A 192.0.2.1\nwww A {addr}\n")
    zone.write_text(text.format(serial=1, addr="192.0.2.10"))
    secondary = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    secondary.bind(("127.0.0.1", 0))
    secondary.settimeout(10)
    notify_port = secondary.getsockname()[1]
    a = RunningAppliance(["--zone", str(zone), "--notify", f"127.0.0.1:{notify_port}"], tmp_path)
    try:
        a.wait("reload.test.")
        assert rrs(query(a.port, "www.reload.test").answer) == {"www.reload.test. 60 A 192.0.2.10"}
        zone.write_text(text.format(serial=2, addr="192.0.2.20"))
        a.signal(signal.SIGHUP)
        # The secondary hears a NOTIFY for the new serial; it acknowledges it.
        payload, peer = secondary.recvfrom(4096)
        notify = dns.message.from_wire(payload)
        assert notify.opcode() == dns.opcode.NOTIFY
        assert notify.question[0].name.to_text() == "reload.test."
        assert notify.answer[0][0].serial == 2
        secondary.sendto(dns.message.make_response(notify).to_wire(), peer)
        served = lambda addr: addr in str(query(a.port, "www.reload.test").answer)  # noqa: E731
        wait_until(lambda: served("192.0.2.20"), what="the reloaded zone served",
                   detail=a.output)
        # A broken zone leaves the old one serving, with the error logged.
        zone.write_text(text.format(serial=3, addr="not-an-address"))
        a.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in a.output(), what="the failure logged",
                   detail=a.output)
        assert f"{zone}:6:" in a.output()
        assert served("192.0.2.20")
        # A reload that does not raise the serial sends no NOTIFY: the next NOTIFY the
        # secondary hears is the one for the reload after it, which raises the serial to 4.
        zone.write_text(text.format(serial=2, addr="192.0.2.30"))
        a.signal(signal.SIGHUP)
        wait_until(lambda: served("192.0.2.30"), what="the same-serial zone served",
                   detail=a.output)
        zone.write_text(text.format(serial=4, addr="192.0.2.40"))
        a.signal(signal.SIGHUP)
        while True:
            payload, peer = secondary.recvfrom(4096)
            heard = dns.message.from_wire(payload)
            if heard.id == notify.id and heard.answer[0][0].serial == 2:
                continue  # a retransmission of the first NOTIFY that crossed our answer
            break
        assert heard.opcode() == dns.opcode.NOTIFY
        assert heard.answer[0][0].serial == 4, "a NOTIFY for the reload that kept serial 2"
        secondary.sendto(dns.message.make_response(heard).to_wire(), peer)
        wait_until(lambda: served("192.0.2.40"), what="the serial-4 zone served",
                   detail=a.output)
    finally:
        a.stop()
        secondary.close()


def test_ten_thousand_names_start_and_memory(tmp_path: Path) -> None:
    lines = ["$ORIGIN big10k.test.", "$TTL 300", "@ SOA ns1 host 1 2 3 4 5", "@ NS ns1",
             "ns1 A 192.0.2.1"]
    lines += [f"h{i} A 10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(10_000)]
    zone = tmp_path / "big10k.zone"
    zone.write_text("\n".join(lines) + "\n")
    a = RunningAppliance(["--zone", str(zone)], tmp_path, runtime_args=("--log-level", "debug"))
    try:
        a.wait("big10k.test.")
        assert rrs(query(a.port, "h9999.big10k.test").answer) == {
            "h9999.big10k.test. 300 A 10.0.39.15"}
        wait_until(lambda: "precomputed" in a.output(), timeout=60,  # the memo is complete
                   what="precomputation finished", detail=a.output)
        resident = rss_kb(a.proc.pid)
        assert resident < 100 * 1024, f"resident memory {resident} kB"
    finally:
        a.stop()


def test_baked_default_zone_without_zone_argument(tmp_path: Path) -> None:
    """No ``--zone``: the example zone baked into the image from data/ is served."""
    a = RunningAppliance([], tmp_path)
    try:
        a.wait("example.org.")
        assert rrs(query(a.port, "www.example.org").answer) == {
            "www.example.org. 3600 A 192.0.2.80"}
        r = query(a.port, "example.org", "CAA")  # a type parsed by dnspython, in the image
        assert len(r.answer[0]) == 2
    finally:
        a.stop()
