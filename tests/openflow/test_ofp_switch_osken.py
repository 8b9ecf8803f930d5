"""The switch engine against os-ken's switch tester (``os_ken/tests/switch/of13``, its
OpenFlow 1.3 conformance cases): every case's prerequisites (flow, group and meter mods, as
os-ken serializes them) install without an error; the flow-stats reply, parsed by os-ken,
shows each flow's match and instructions as the tester sent them; and every packet test
gives the tester's verdict: the egress frame on port 2 byte for byte, the packet-in's data,
or a miss in the named tables by their lookup and matched counts.

One exception, os-ken's and not ours: its SCTP checksum is computed over ``str(data)`` (the
text of the bytes, under Python 3), so the egress frames of the SCTP set-field cases carry a
wrong CRC32c; for those the frame must equal the tester's but for the checksum, and carry
the right one."""

from __future__ import annotations

import glob
import json
import os

import pytest

os_ken = pytest.importorskip(
    "os_ken", reason="needs os-ken, the switch's real peer: "
                     "pip install -e 'appliances/openflow_switch[test]'",
    exc_type=ImportError)

import importlib  # noqa: E402
import inspect  # noqa: E402
import pkgutil  # noqa: E402
import struct  # noqa: E402

from fata_openflow_switch import messages as M  # noqa: E402
from fata_openflow_switch import multipart as MP  # noqa: E402
from fata_openflow_switch.ofp_const import FlowModCommand, PacketInReason  # noqa: E402
from fata_openflow_switch.packet import parse  # noqa: E402
from fata_openflow_switch.rewrite import crc32c  # noqa: E402
from fata_openflow_switch.switch import Switch, SwitchPort  # noqa: E402
from os_ken.ofproto import ofproto_parser  # noqa: E402

from . import _osken as K  # noqa: E402

OSKEN_DIR = os.path.dirname(os_ken.__file__)


def _packet_namespace() -> dict[str, type]:
    """The names the tester's packet texts use: os-ken's packet classes (two renamed, as
    the tester renames them)."""
    ns: dict[str, type] = {}
    for info in pkgutil.iter_modules(importlib.import_module("os_ken.lib.packet").__path__):
        try:
            mod = importlib.import_module(f"os_ken.lib.packet.{info.name}")
        except ImportError:
            continue
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and obj.__module__ == mod.__name__:
                ns.setdefault(name, obj)
    ns["icmpv6echo"] = importlib.import_module("os_ken.lib.packet.icmpv6").echo
    ns["ipv6option"] = importlib.import_module("os_ken.lib.packet.ipv6").option
    return ns


NS = _packet_namespace()


def build(texts: list[str]) -> bytes:
    """A packet from the tester's text, as the tester builds it."""
    pkt = eval("/".join(texts), dict(NS))
    pkt.serialize()
    return bytes(pkt.data)


def _switch() -> Switch:
    # the tester's ports: 1 receives, 2 and 3 send (target_recv_port, target_send_port_1/2)
    return Switch(1, [SwitchPort(i, f"p{i}".encode(), bytes([2, 0, 0, 0, 0, i]))
                      for i in (1, 2, 3)], n_tables=64)


def _cases() -> list[tuple[str, list[dict]]]:
    out = []
    pattern = os.path.join(OSKEN_DIR, "tests/switch/of13/**/*.json")
    for path in sorted(glob.glob(pattern, recursive=True)):
        with open(path) as f:
            cases = json.load(f)
        for i, case in enumerate(cases[1:]):
            out.append((f"{os.path.relpath(path, OSKEN_DIR)}#{i}", case))
    return out


def test_every_tester_case_installs_and_flow_stats_echo_it() -> None:
    cases = _cases()
    assert len(cases) > 400
    total = 0
    for name, case in cases:
        sw = _switch()
        sent = []
        for pre in case["prerequisite"]:
            theirs = ofproto_parser.ofp_msg_from_jsondict(K.DP, pre)
            ours = M.decode_message(K.serialize(theirs))
            out = sw.handle(ours, 0.0)
            assert not any(isinstance(m, M.ErrorMsg) for m in out.messages), (name, out)
            if isinstance(ours, M.FlowMod) and ours.command == FlowModCommand.ADD:
                sent.append((str(theirs.match), str(theirs.instructions)))
        replies = sw.handle(M.MultipartRequest(MP.FlowStatsRequest(), xid=1), 1.0).messages
        shown = set()
        for reply in replies:
            for entry in K.parse(reply.encode()).body:
                shown.add((str(entry.match), str(entry.instructions)))
        assert set(sent) <= shown, name
        total += len(sent)
    assert total > 1000


def _install(case: dict) -> Switch:
    sw = _switch()
    for pre in case["prerequisite"]:
        msg = M.decode_message(K.serialize(ofproto_parser.ofp_msg_from_jsondict(K.DP, pre)))
        assert not sw.handle(msg, 0.0).messages
    return sw


def _same_but_sctp_checksum(got: bytes, expected: bytes) -> bool:
    p = parse(got, 2)
    at = p.l4 + 8
    if p.l4 < 0 or len(got) != len(expected) or got[:at] + got[at + 4:] != (
            expected[:at] + expected[at + 4:]):
        return False
    segment = bytearray(got[p.l4:])
    stored = struct.unpack_from("<I", segment, 8)[0]
    segment[8:12] = bytes(4)
    return stored == crc32c(segment)


def test_every_tester_packet_test_passes() -> None:
    counts = {"egress": 0, "PACKET_IN": 0, "table-miss": 0}
    for name, case in _cases():
        sw = _install(case)
        for i, test in enumerate(case["tests"]):
            where = f"{name} test {i}: {case['description']}"
            if not isinstance(test["ingress"], list):
                continue  # a throughput test: packets at a rate, for a real link
            before = {t.table_id: (t.lookup_count, t.matched_count) for t in sw.tables.tables}
            out = sw.process(1, [build(test["ingress"])], 1.0)
            if "egress" in test:
                expected = [build(test["egress"])] if test["egress"] else []
                got = out.frames.get(2, [])
                if "set_field" in case["description"] and "sctp" in case["description"]:
                    assert len(got) == 1 and _same_but_sctp_checksum(got[0], expected[0]), where
                else:
                    assert got == expected, where
            elif "PACKET_IN" in test:
                pins = [m for m in out.messages if isinstance(m, M.PacketIn)]
                assert len(pins) == 1, where
                assert pins[0].reason == PacketInReason.ACTION, where
                assert pins[0].data == build(test["PACKET_IN"]), where
            else:
                for table_id in test["table-miss"]:
                    lookups, matched = before[table_id]
                    t = sw.tables.tables[table_id]
                    assert t.lookup_count > lookups and t.matched_count == matched, where
            counts[next(k for k in counts if k in test)] += 1
    assert counts["egress"] > 450 and counts["PACKET_IN"] > 100 and counts["table-miss"] > 100
