"""The DNS benchmark's pure parts: zones, query mix, answer check, dnsperf parsing, targets."""

from __future__ import annotations

from types import SimpleNamespace

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rrset
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

DNSPERF_OUTPUT = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 43398 -d /tmp/q -l 1 -c 4 -T 1 -q 100 -t 1
[Status] Sending queries (to 127.0.0.1:43398)
[Status] Started at: Mon Nov 23 18:09:24 2026
[Status] Stopping after 1.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         93635
  Queries completed:    93635 (100.00%)
  Queries lost:         0 (0.00%)

  Response codes:       NOERROR 84278 (90.01%), NXDOMAIN 9357 (9.99%)
  Average packet size:  request 46, response 67
  Run time (s):         1.003945
  Queries per second:   93267.061443

  Average Latency (s):  0.000929 (min 0.000031, max 0.004483)
  Latency StdDev (s):   0.000539

"""

DNSPERF_ALL_LOST = """\
[Timeout] Query timed out: msg id 0
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         100
  Queries completed:    0 (0.00%)
  Queries lost:         100 (100.00%)

  Response codes:       
  Average packet size:  request 29, response 0
  Run time (s):         1.000079
  Queries per second:   0.000000

  Average Latency (s):  0.000000 (min 0.000000, max 0.000000)

"""  # noqa: W291 -- dnsperf prints a trailing blank after "Response codes:"


# -- zones ------------------------------------------------------------------------------


def test_zone_file_reads_back_as_the_generated_data(bench: SimpleNamespace) -> None:
    zones = bench.zones
    zone = zones.generate_zone(100)
    parsed = dns.zone.from_text(zone.to_text(), origin=zone.origin, relativize=False)
    seen = {}
    for name, rdataset in parsed.iterate_rdatasets():
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        assert rdataset.ttl == zones.TTL
        seen[(name.to_text(), rtype)] = sorted(r.to_text() for r in rdataset)
    assert seen == {key: sorted(value) for key, value in zone.rrsets.items()}
    assert zone.size == 100 == len(set(zone.hosts))
    assert len(zone.names) == 102  # the hosts, the apex and ns1


def test_zones_are_deterministic(bench: SimpleNamespace) -> None:
    zones = bench.zones
    assert zones.generate_zone(1000).to_text() == zones.generate_zone(1000).to_text()
    assert zones.generate_zone(1000, seed=2).to_text() != zones.generate_zone(1000).to_text()
    zone = zones.generate_zone(100)
    assert zones.generate_queries(zone) == zones.generate_queries(zone)
    with pytest.raises(ValueError):
        zones.generate_zone(0)


def test_query_mix_is_ninety_ten_and_true_to_the_zone(bench: SimpleNamespace) -> None:
    zones = bench.zones
    zone = zones.generate_zone(1000)
    queries = zones.generate_queries(zone, count=5000)
    absent = [q for q in queries if not q.exists]
    assert len(queries) == 5000 and len(absent) == 500
    # The mix is shuffled: any long prefix is near 10% NXDOMAIN, not all of it at the end.
    assert 30 <= sum(not q.exists for q in queries[:500]) <= 70
    for q in queries:
        rcode, rdatas = zone.lookup(q.qname, q.qtype)
        if q.exists:
            assert rcode == "NOERROR" and rdatas, q
        else:
            assert rcode == "NXDOMAIN" and not rdatas, q
    assert {q.qtype for q in queries if q.exists} == {"A", "AAAA"}


def test_lookup_answers_as_an_authoritative_server(bench: SimpleNamespace) -> None:
    zone = bench.zones.generate_zone(10)
    with_aaaa, without_aaaa = zone.hosts[0], zone.hosts[1]
    assert zone.lookup(with_aaaa.upper(), "aaaa") == ("NOERROR", zone.rrsets[(with_aaaa, "AAAA")])
    assert zone.lookup(without_aaaa, "AAAA") == ("NOERROR", ())
    assert zone.lookup("nope." + zone.origin, "A") == ("NXDOMAIN", ())
    assert zone.lookup(zone.origin.rstrip("."), "NS") == ("NOERROR", (f"ns1.{zone.origin}",))


def test_query_file_is_dnsperf_format(bench: SimpleNamespace, tmp_path) -> None:
    zones = bench.zones
    zone = zones.generate_zone(10)
    queries = zones.generate_queries(zone, count=20)
    lines = zones.write_queries(queries, tmp_path / "q").read_text().splitlines()
    assert lines == [f"{q.qname} {q.qtype}" for q in queries]


# -- answer check -----------------------------------------------------------------------


def _answer(zone, qname: str, qtype: str, *, rdatas=None, ttl=None, rcode=None, aa=True):
    """A response as a correct server would build it, with one thing changed on request."""
    query = dns.message.make_query(qname, qtype)
    response = dns.message.make_response(query)
    want_rcode, want_rdatas = zone.lookup(qname, qtype)
    response.set_rcode(dns.rcode.from_text(rcode or want_rcode))
    if aa:
        response.flags |= dns.flags.AA
    rdatas = want_rdatas if rdatas is None else rdatas
    if rdatas:
        response.answer.append(
            dns.rrset.from_text_list(qname, ttl or 3600, dns.rdataclass.IN, qtype, list(rdatas))
        )
    return response


def test_check_answer_accepts_right_answers(bench: SimpleNamespace) -> None:
    zones, check = bench.zones, bench.check
    zone = zones.generate_zone(10)
    for query in check.sample_queries(zone, zones.generate_queries(zone, count=100), 50):
        assert check.check_answer(zone, query, _answer(zone, query.qname, query.qtype)) is None


def test_check_answer_rejects_each_kind_of_wrong_answer(bench: SimpleNamespace) -> None:
    zones, check = bench.zones, bench.check
    zone = zones.generate_zone(10)
    host = zone.hosts[1]
    q = zones.Query(host, "A", True)
    nx = zones.Query("nx." + zone.origin, "A", False)
    cases = {
        "rcode SERVFAIL": _answer(zone, host, "A", rcode="SERVFAIL"),
        "rcode NOERROR, expected NXDOMAIN": _answer(zone, nx.qname, "A", rcode="NOERROR"),
        "not authoritative": _answer(zone, host, "A", aa=False),
        "expected": _answer(zone, host, "A", rdatas=("10.9.9.9",)),
        "TTL 60": _answer(zone, host, "A", ttl=60),
    }
    for expected_text, response in cases.items():
        query = nx if "NXDOMAIN" in expected_text else q
        problem = check.check_answer(zone, query, response)
        assert problem is not None and expected_text in problem, (expected_text, problem)
    extra = _answer(zone, host, "A")
    extra.answer.append(dns.rrset.from_text(host, 3600, "IN", "TXT", '"x"'))
    assert "expected 1 answer RRset" in check.check_answer(zone, q, extra)
    nodata = zones.Query(host, "AAAA", True)
    filled = _answer(zone, host, "AAAA", rdatas=("fd00::1",))
    assert "expected an empty answer" in check.check_answer(zone, nodata, filled)


def test_sample_holds_fixed_cases_and_both_kinds_of_name(bench: SimpleNamespace) -> None:
    zones, check = bench.zones, bench.check
    zone = zones.generate_zone(100)
    sample = check.sample_queries(zone, zones.generate_queries(zone), 40)
    kinds = {(q.qname, q.qtype) for q in sample[:3]}
    assert (zone.origin, "SOA") in kinds and (zone.origin, "NS") in kinds
    assert any(zone.lookup(q.qname, q.qtype) == ("NOERROR", ()) for q in sample)
    assert sum(not q.exists for q in sample) == 4
    assert len(sample) == 43


def test_probe_of_a_silent_port_is_false(bench: SimpleNamespace) -> None:
    port = bench.process.free_port()
    assert bench.check.probe("127.0.0.1", port, "bench.fata.test.") is False


# -- dnsperf ----------------------------------------------------------------------------


def test_parse_reads_dnsperf_summary(bench: SimpleNamespace) -> None:
    result = bench.dnsperf.parse(DNSPERF_OUTPUT)
    assert (result.sent, result.completed, result.lost) == (93635, 93635, 0)
    assert result.qps == pytest.approx(93267.061443)
    assert result.avg_latency == pytest.approx(0.000929)
    assert (result.min_latency, result.max_latency) == (0.000031, 0.004483)
    assert result.rcodes == {"NOERROR": 84278, "NXDOMAIN": 9357}
    assert result.run_time == pytest.approx(1.003945)


def test_parse_reads_a_run_where_everything_was_lost(bench: SimpleNamespace) -> None:
    result = bench.dnsperf.parse(DNSPERF_ALL_LOST)
    assert (result.completed, result.lost, result.qps, result.rcodes) == (0, 100, 0.0, {})
    assert result.lost_fraction == 1.0


@pytest.mark.parametrize(
    "change",
    [
        ("  Queries per second:   93267.061443\n", ""),
        ("NXDOMAIN 9357 (9.99%)", "NXDOMAIN 9000 (9.99%)"),
        ("NXDOMAIN 9357 (9.99%)", "NXDOMAIN lots"),
        ("Statistics:", "Statistics:\n" * 2 + "  Queries sent:  x\n"),
    ],
)
def test_parse_refuses_damaged_output(bench: SimpleNamespace, change: tuple[str, str]) -> None:
    damaged = DNSPERF_OUTPUT.replace(*change)
    if change[0].startswith("Statistics"):
        damaged = damaged.replace("  Queries sent:         93635\n", "")
    with pytest.raises(bench.dnsperf.DnsperfError):
        bench.dnsperf.parse(damaged)


@settings(max_examples=300, deadline=None)
@given(
    cut=st.tuples(st.integers(0, len(DNSPERF_OUTPUT)), st.integers(0, 40)),
    noise=st.text(max_size=40),
)
def test_parse_never_raises_anything_but_dnsperf_error(bench: SimpleNamespace, cut, noise) -> None:
    dnsperf = bench.dnsperf
    start, length = cut
    text = DNSPERF_OUTPUT[:start] + noise + DNSPERF_OUTPUT[start + length :]
    try:
        result = dnsperf.parse(text)
    except dnsperf.DnsperfError:
        return
    assert result.completed == sum(result.rcodes.values())


def test_command_is_udp_one_thread_fixed_time(bench: SimpleNamespace, tmp_path) -> None:
    argv = bench.dnsperf.command(5300, tmp_path / "q", 2.5)
    assert argv[0] == "dnsperf"
    joined = " ".join(argv)
    assert "-s 127.0.0.1" in joined and "-p 5300" in joined and "-l 2.5" in joined
    assert "-T 1" in joined and "-m" not in argv  # UDP is dnsperf's default mode


# -- judging the load run and the targets ------------------------------------------------


def _perf(bench, sent: int, lost: int, rcodes: dict[str, int]):
    return bench.dnsperf.DnsperfResult(
        sent=sent,
        completed=sum(rcodes.values()),
        lost=lost,
        qps=1000.0,
        run_time=1.0,
        avg_latency=0.001,
        min_latency=0.0,
        max_latency=0.01,
        rcodes=rcodes,
    )


def test_load_problem_knows_the_expected_nxdomain_count(bench: SimpleNamespace) -> None:
    zones, runner = bench.zones, bench.runner
    zone = zones.generate_zone(100)
    queries = zones.generate_queries(zone, count=1000)
    sent = 2500  # two and a half passes over the file
    nx = 2 * 100 + sum(not q.exists for q in queries[:500])
    right = _perf(bench, sent, 0, {"NOERROR": sent - nx, "NXDOMAIN": nx})
    assert runner.load_problem(right, queries) is None
    all_found = _perf(bench, sent, 0, {"NOERROR": sent})
    assert "NXDOMAIN answers" in runner.load_problem(all_found, queries)
    refused = _perf(bench, sent, 0, {"NOERROR": sent - nx, "NXDOMAIN": nx - 1, "REFUSED": 1})
    assert "REFUSED x1" in runner.load_problem(refused, queries)
    assert "no query completed" in runner.load_problem(_perf(bench, 10, 10, {}), queries)


def _row(bench, server: str, size: int, qps: float | None, **kw):
    label = {"fata": "Fata", "bind": "BIND9", "knot": "Knot", "nsd": "NSD"}[server]
    return bench.results.Row(server=server, label=label, size=size, qps=qps, **kw)


def test_targets_and_ratios_follow_issue_3(bench: SimpleNamespace) -> None:
    results = bench.results
    rows = [
        _row(bench, "fata", 100, 130.0, first_answer_s=0.2),
        _row(bench, "bind", 100, 100.0),
        _row(bench, "knot", 100, 140.0),
        _row(bench, "nsd", 100, None, status="missing: nsd not installed"),
        _row(bench, "fata", 10_000, 90.0, first_answer_s=0.7, rss_mb=60.0),
        _row(bench, "knot", 10_000, 80.0),
    ]
    results.fill_ratios(rows)
    assert [r.fata_ratio for r in rows[1:4]] == [pytest.approx(1.3), pytest.approx(130 / 140), None]
    assert rows[1].fata_cpu_ratio is None  # no CPU measured in these rows
    found = {t.name: t.met for t in results.targets(rows, [100, 10_000])}
    assert found == {
        "qps vs Knot at 100 names": False,
        "qps vs BIND9 at 100 names": True,
        "qps vs Knot at 10,000 names": True,
        "first answer after start at 100 names": True,
        "first answer after start at 10,000 names": False,
        "resident memory at 10,000 names": True,
    }
    # A missing peer is a row of its own that says why.
    assert results.table_rows(rows)[3]["status"] == "missing: nsd not installed"


def test_rounds_combine_into_the_median_run(bench: SimpleNamespace) -> None:
    combine = bench.results.combine
    runs = [
        _row(bench, "knot", 100, 90.0, latency_ms=0.9, rss_mb=8.0, first_answer_s=0.3),
        _row(bench, "knot", 100, 110.0, latency_ms=1.1, rss_mb=9.0, first_answer_s=0.1),
        _row(bench, "knot", 100, 100.0, latency_ms=1.0, rss_mb=7.0, first_answer_s=0.2),
    ]
    for run in runs:
        run.correct, run.checked = True, 10
    row = combine(runs)
    assert (row.qps, row.latency_ms, row.rss_mb, row.first_answer_s) == (100.0, 1.0, 9.0, 0.2)
    assert row.rounds_qps == [90.0, 110.0, 100.0] and row.correct and row.checked == 30
    assert row.status == "ok"
    runs[1].correct, runs[1].status, runs[1].problems = False, "WRONG ANSWERS", ["x: rcode"]
    wrong = combine(runs)
    assert wrong.correct is False and wrong.status == "WRONG ANSWERS (1 of 3 runs)"
    assert wrong.problems == ["x: rcode"]
    even = combine(runs[:2])
    assert even.qps == 100.0  # median of two
    absent = [_row(bench, "nsd", 100, None, status="missing: nsd not installed")] * 3
    assert combine(absent).status == "missing: nsd not installed"
    assert combine(absent).qps is None


# -- options ----------------------------------------------------------------------------


def test_options_defaults_and_quick(bench: SimpleNamespace) -> None:
    options = bench.options
    full = options.settings(options.parser().parse_args([]))
    assert full.sizes == [100, 1000, 10000] and full.duration == 5.0 and full.rounds == 3
    assert full.peers == ["bind", "nsd", "knot"]
    assert full.out == options.REPO / "bench-results" / "dns"
    assert full.load_core != full.core
    assert full.flood_rate == 20_000 and full.flood_size == 1000
    quick = options.settings(options.parser().parse_args(["--quick", "--against", "knot,bind"]))
    assert quick.sizes == [100] and quick.duration == 2.0 and quick.peers == ["knot", "bind"]
    assert quick.rounds == 1 and quick.flood_size == 100
    none = options.parser().parse_args(["--against", ""])
    assert none.against == []


def test_main_refuses_bad_options_without_running_anything(harness, capsys) -> None:
    assert harness.main(["--against", "powerdns"]) == 2
    assert "unknown peer(s) powerdns" in capsys.readouterr().err
    assert harness.main(["--sizes", "10,x"]) == 2
    assert harness.main(["--flood-rate", "-1"]) == 2
    assert "--flood-rate must be 0" in capsys.readouterr().err
    assert harness.main(["--core", "4096"]) == 2
    assert "core 4096 is not available" in capsys.readouterr().err


# -- the spoofed flood ------------------------------------------------------------------


def test_flood_sources_are_loopback_victims_spread_over_prefixes(bench: SimpleNamespace) -> None:
    import ipaddress

    sources = bench.flood.victim_addresses(16, 256)
    assert len(set(sources)) == 256 and "127.0.0.1" not in sources
    assert all(ipaddress.ip_address(a).is_loopback for a in sources)
    prefixes = {a.rsplit(".", 1)[0] for a in sources}
    assert len(prefixes) == 16
    assert len(bench.flood.victim_addresses(3, 10)) == 10
    with pytest.raises(ValueError, match="cannot spread"):
        bench.flood.victim_addresses(2, 600)


def test_flood_query_is_an_edns_txt_query_for_the_amplifier(bench: SimpleNamespace) -> None:
    wire = bench.flood.query_wire(bench.zones.FLOOD_QNAME)
    message = dns.message.from_wire(wire)
    assert str(message.question[0].name) == bench.zones.FLOOD_QNAME
    assert dns.rdatatype.to_text(message.question[0].rdtype) == "TXT"
    assert message.edns == 0 and message.payload == 4096
    assert not message.flags & dns.flags.RD


def test_flood_zone_answer_is_a_kilobyte_amplifier(bench: SimpleNamespace, tmp_path) -> None:
    zone = bench.zones.flood_zone()
    parsed = dns.zone.from_file(str(zone.write(tmp_path / "f.db")), origin=zone.origin,
                                relativize=False)
    rrset = parsed.find_rrset(bench.zones.FLOOD_QNAME, "TXT")
    query = bench.flood.query_wire(bench.zones.FLOOD_QNAME)
    assert 900 < len(rrset[0].to_digestable()) < 1200 and len(query) < 60


def test_flood_counts_classify_replies_and_read_back(bench: SimpleNamespace) -> None:
    counts = bench.flood.FloodCounts(sent=10, sent_bytes=500, send_seconds=2.0)
    query = dns.message.make_query("a.test.", "TXT")
    full = dns.message.make_response(query)
    full.answer.append(dns.rrset.from_text("a.test.", 60, "IN", "TXT", '"x"'))
    slip = dns.message.make_response(query)
    slip.flags |= dns.flags.TC
    empty = dns.message.make_response(query)
    for wire in (full.to_wire(), slip.to_wire(), slip.to_wire(), empty.to_wire(), b"\x00"):
        counts.count(wire)
    assert (counts.full, counts.slipped, counts.other, counts.replies) == (1, 2, 2, 5)
    assert counts.per_second(counts.slipped) == 1.0
    assert counts.amplification == counts.received_bytes / 500
    import dataclasses
    import json

    again = bench.flood.FloodCounts.from_json(json.dumps(dataclasses.asdict(counts)))
    assert again == counts
    with pytest.raises(ValueError, match="not a flood report"):
        bench.flood.FloodCounts.from_json('{"sent": 1}')
    with pytest.raises(ValueError, match="not a flood report"):
        bench.flood.FloodCounts.from_json("Traceback (most recent call last)")


def test_flood_sends_from_every_source_and_counts_what_comes_back(
    bench: SimpleNamespace,
) -> None:
    """Against a responder on loopback that answers even IDs in full and slips odd ones,
    every query is sent from one of the sources and every reply counted by kind."""
    import socket
    import threading

    responder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    responder.bind(("127.0.0.1", 0))
    responder.settimeout(0.05)
    seen: list[str] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                data, peer = responder.recvfrom(4096)
            except TimeoutError:
                continue
            seen.append(peer[0])
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            if query.id % 2:
                response.flags |= dns.flags.TC
            else:
                response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN",
                                                           "TXT", '"amplified"'))
            responder.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve)
    thread.start()
    sources = bench.flood.victim_addresses(4, 12)
    try:
        counts = bench.flood.run_flood(responder.getsockname(),
                                       bench.flood.query_wire("a.test."), rate=400.0,
                                       duration=0.3, sources=sources)
    finally:
        done.set()
        thread.join(10)
        responder.close()
    assert counts.sent == len(seen) > 0 and set(seen) == set(sources)
    assert counts.full + counts.slipped == counts.sent  # the drain waited for every reply
    assert abs(counts.full - counts.slipped) <= 1 and counts.other == 0
    assert counts.sent_bytes == counts.sent * len(bench.flood.query_wire("a.test."))


def test_flood_refuses_a_server_off_loopback(bench: SimpleNamespace, capsys) -> None:
    assert bench.flood.main(["--server", "192.0.2.1", "--port", "53", "--qname", "x."]) == 2
    assert "must be a loopback address" in capsys.readouterr().err
