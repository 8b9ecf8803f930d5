"""Several controllers (``roles.py``, specification 1.3.5 6.3.5): roles, generation IDs,
what a slave may not do, and which asynchronous messages each channel is sent; and the
adapter with two controllers connected at once."""

from __future__ import annotations

import asyncio

from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch import messages as M
from fata_openflow_switch.ofp_const import (
    BadRequestCode,
    ControllerRole,
    ErrorType,
    PacketInReason,
    PortNo,
    PortReason,
    RoleRequestFailedCode,
)
from fata_openflow_switch.oxm import MATCH_ANY
from fata_openflow_switch.port_desc import Port
from fata_openflow_switch.roles import Roles
from fata_openflow_switch.unikernel import SwitchAppliance

from ._frames import mac
from .test_ofp_unikernel import Clock, Console, Controller, FakeNetif, FakeStack, args, frame

PIN = M.PacketIn(0xFFFFFFFF, 60, PacketInReason.NO_MATCH, 0, 0, MATCH_ANY, bytes(60))
STATUS = M.PortStatus(PortReason.MODIFY, Port(1, bytes(6), b"p1"))
REMOVED = M.FlowRemoved(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def role(roles: Roles, key: str, which: int, generation: int = 0, xid: int = 1) -> M.Message:
    (answer,) = roles.handle(key, M.RoleRequest(which, generation, xid=xid))
    return answer


def test_master_slave_equal_and_generation_ids() -> None:
    roles = Roles()
    for key in ("a", "b", "c"):
        roles.add(key)
    assert all(roles.role(k) == ControllerRole.EQUAL for k in "abc")
    reply = role(roles, "a", ControllerRole.MASTER, 5)
    assert isinstance(reply, M.RoleReply) and (reply.role, reply.generation_id) == (2, 5)
    assert role(roles, "b", ControllerRole.MASTER, 6).role == ControllerRole.MASTER
    assert roles.role("a") == ControllerRole.SLAVE  # only one master
    stale = role(roles, "a", ControllerRole.MASTER, 4, xid=9)
    assert isinstance(stale, M.ErrorMsg) and stale.xid == 9
    assert (stale.type, stale.code) == (ErrorType.ROLE_REQUEST_FAILED,
                                              RoleRequestFailedCode.STALE)
    # 64-bit wraparound: 2**64 - 1 is older than 6, and 1 newer than 2**64 - 1
    assert isinstance(role(roles, "c", ControllerRole.SLAVE, (1 << 64) - 1), M.ErrorMsg)
    wrapped = Roles()
    wrapped.add("c")
    role(wrapped, "c", ControllerRole.SLAVE, (1 << 64) - 1)
    assert role(wrapped, "c", ControllerRole.MASTER, 1).role == ControllerRole.MASTER
    assert role(roles, "c", ControllerRole.MASTER, 7).role == ControllerRole.MASTER
    assert roles.role("b") == ControllerRole.SLAVE
    assert role(roles, "a", ControllerRole.NOCHANGE).role == ControllerRole.SLAVE
    assert role(roles, "a", ControllerRole.EQUAL).role == ControllerRole.EQUAL  # no gen check
    bad = role(roles, "a", 7)
    assert (bad.type, bad.code) == (ErrorType.ROLE_REQUEST_FAILED,
                                          RoleRequestFailedCode.BAD_ROLE)


def test_a_slave_may_not_change_the_switch_and_gets_only_port_status() -> None:
    roles = Roles()
    roles.add("m")
    roles.add("s")
    role(roles, "s", ControllerRole.SLAVE, 1)
    mod = M.FlowMod(xid=3)
    (refused,) = roles.handle("s", mod)
    assert (refused.type, refused.code, refused.xid) == (
        ErrorType.BAD_REQUEST, BadRequestCode.IS_SLAVE, 3)
    assert refused.data == mod.encode()[:64]
    assert roles.handle("s", M.PacketOut(xid=4))[0].code == BadRequestCode.IS_SLAVE
    assert roles.handle("s", M.FeaturesRequest(xid=5)) is None  # reading is allowed
    assert roles.handle("m", mod) is None
    assert [roles.wants("s", m) for m in (PIN, STATUS, REMOVED)] == [False, True, False]
    assert [roles.wants("m", m) for m in (PIN, STATUS, REMOVED)] == [True, True, True]


def test_async_configuration_filters_by_reason() -> None:
    roles = Roles()
    roles.add("a")
    (got,) = roles.handle("a", M.GetAsyncRequest(xid=2))
    assert isinstance(got, M.GetAsyncReply) and got.xid == 2
    only_action = 1 << PacketInReason.ACTION
    assert roles.handle("a", M.SetAsync((only_action, 0), (0, 0), (0, 0))) == []
    assert not roles.wants("a", PIN) and not roles.wants("a", STATUS)
    action = M.PacketIn(0xFFFFFFFF, 60, PacketInReason.ACTION, 0, 0, MATCH_ANY, bytes(60))
    assert roles.wants("a", action)
    (got,) = roles.handle("a", M.GetAsyncRequest(xid=3))
    assert got.packet_in_mask == (only_action, 0) and got.port_status_mask == (0, 0)


def test_two_controllers_at_once_with_roles() -> None:
    """Both connected: both get the PACKET_IN while equal; once one is master the other, a
    slave, gets no PACKET_IN, has its FLOW_MOD refused, and each gets only its own replies."""
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2)}
        stack, console = FakeStack(), Console()
        stack.accepting.set()
        app = SwitchAppliance(ports, stack, Clock(), console,  # type: ignore[arg-type]
                              args(controller=["192.0.2.1:6633", "192.0.2.1:6633"],
                                   fail_mode="secure"))
        app.start_ports()
        control = asyncio.get_running_loop().create_task(app.control())
        try:
            one = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            two = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            for ctl in (one, two):
                await ctl.flush()
                await ctl.send(M.BarrierRequest(xid=1))
                await ctl.expect(M.BarrierReply)
            assert app.connections == 2
            to_controller = I.ApplyActions((A.Output(PortNo.CONTROLLER, 0xFFFF),))
            await one.send(M.FlowMod(priority=0, instructions=(to_controller,), xid=2))
            await one.send(M.BarrierRequest(xid=3))
            await one.expect(M.BarrierReply)
            ports[1].receive([frame(mac(0xB), mac(0xA))])
            await one.expect(M.PacketIn)
            await two.expect(M.PacketIn)  # equals both hear it
            await one.send(M.RoleRequest(ControllerRole.MASTER, 1, xid=4))
            assert (await one.expect(M.RoleReply)).role == ControllerRole.MASTER
            await two.send(M.RoleRequest(ControllerRole.SLAVE, 1, xid=5))
            assert (await two.expect(M.RoleReply)).role == ControllerRole.SLAVE
            await two.send(M.FlowMod(priority=9, xid=6))
            refused = await two.expect(M.ErrorMsg)
            assert (refused.xid, refused.code) == (6, BadRequestCode.IS_SLAVE)
            ports[1].receive([frame(mac(0xB), mac(0xA))])
            await one.expect(M.PacketIn)
            await two.send(M.EchoRequest(b"2", xid=7))
            assert (await two.expect(M.EchoReply)).data == b"2"
            assert not any(isinstance(m, (M.PacketIn, M.EchoReply)) for m in two.messages)
            assert not any(isinstance(m, (M.RoleReply, M.ErrorMsg)) for m in one.messages)
        finally:
            control.cancel()
            app.stop_timer()

    asyncio.run(main())
