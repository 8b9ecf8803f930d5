"""Small self-contained checks of the OpenFlow switch that a fork (``fata new``) carries
along: a flow installed through the codec's wire form forwards a frame, a table miss goes to
the controller, and the fail-standalone learning switch learns and floods.  No ports and no
controller; the full suite (os-ken as the peer, hosts in namespaces) lives in the
project's ``tests/openflow/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fata_openflow_switch import actions as A  # noqa: E402
from fata_openflow_switch import instructions as I  # noqa: E402
from fata_openflow_switch import messages as M  # noqa: E402
from fata_openflow_switch.learning import LearningSwitch  # noqa: E402
from fata_openflow_switch.ofp_const import PortNo  # noqa: E402
from fata_openflow_switch.oxm import Match, oxm  # noqa: E402
from fata_openflow_switch.switch import Switch, SwitchPort  # noqa: E402

A_MAC, B_MAC = b"\x02\x00\x00\x00\x00\x0a", b"\x02\x00\x00\x00\x00\x0b"


def _frame(dst: bytes, src: bytes) -> bytes:
    return dst + src + b"\x08\x00" + bytes(46)


def _switch() -> Switch:
    ports = [SwitchPort(n, f"p{n}".encode(), bytes([2, 0, 0, 0, 1, n])) for n in (1, 2, 3)]
    return Switch(0x2A, ports)


def _wire(msg: M.Message) -> M.Message:
    return M.decode_message(msg.encode())  # as the controller's bytes arrive


def test_a_flow_forwards_and_a_miss_goes_to_the_controller() -> None:
    sw = _switch()
    to_p2 = I.ApplyActions((A.Output(2, 0),))
    done = sw.handle(_wire(M.FlowMod(priority=10, match=Match((oxm("in_port", 1),)),
                                     instructions=(to_p2,), xid=1)), 0.0)
    assert done.messages == []  # a flow-mod that succeeds says nothing
    frame = _frame(B_MAC, A_MAC)
    assert sw.process(1, [frame], 1.0).frames == {2: [frame]}
    miss = I.ApplyActions((A.Output(PortNo.CONTROLLER, 0xFFFF),))
    sw.handle(_wire(M.FlowMod(priority=0, instructions=(miss,), xid=2)), 2.0)
    [packet_in] = sw.process(3, [frame], 3.0).messages
    assert isinstance(packet_in, M.PacketIn) and packet_in.data == frame


def test_the_standalone_fallback_learns_and_floods() -> None:
    learn = LearningSwitch([1, 2, 3])
    broadcast = _frame(b"\xff" * 6, A_MAC)
    assert learn.process(1, [broadcast], 0.0) == {2: [broadcast], 3: [broadcast]}
    reply = _frame(A_MAC, B_MAC)
    assert learn.process(2, [reply], 1.0) == {1: [reply]}  # A was learned on port 1
