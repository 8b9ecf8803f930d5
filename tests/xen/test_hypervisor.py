"""The Xen platform's hypervisor: Xen's rules for domains, memory and event channels (the
engine), and the process that hands out memfds and eventfds by them, driven over its real
socket by domain 0's and a guest's connections."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest
from fata.platform.xen_host import HypervisorClient
from fata.platform.xen_hypervisor import HypervisorServer
from fata.xen.hypervisor import (
    DOMID_SELF,
    HVM_PARAM_STORE_EVTCHN,
    HVM_PARAM_STORE_PFN,
    Hypervisor,
    HypervisorError,
    PortState,
)


def code(call) -> str:
    with pytest.raises(HypervisorError) as info:
        call()
    return info.value.code


def test_only_domain_0_creates_destroys_and_maps_others() -> None:
    hv = Hypervisor()
    guest = hv.create_domain(0, "guest", 4).domid
    other = hv.create_domain(0, "other", 4).domid
    assert code(lambda: hv.create_domain(guest, "evil", 4)) == "EPERM"
    assert code(lambda: hv.create_domain(0, "guest", 4)) == "EEXIST"
    assert code(lambda: hv.create_domain(0, "huge", 10**6)) == "EINVAL"
    assert code(lambda: hv.memory(guest, other)) == "EPERM"
    assert code(lambda: hv.memory(guest, 0)) == "EPERM"
    assert hv.memory(guest, DOMID_SELF).domid == guest
    assert hv.memory(0, guest).domid == guest
    assert code(lambda: hv.destroy_domain(guest, other)) == "EPERM"
    assert code(lambda: hv.set_param(guest, guest, HVM_PARAM_STORE_PFN, 0)) == "EPERM"
    hv.set_param(0, guest, HVM_PARAM_STORE_PFN, 3)
    assert hv.get_param(guest, DOMID_SELF, HVM_PARAM_STORE_PFN) == 3
    assert code(lambda: hv.get_param(other, guest, HVM_PARAM_STORE_PFN)) == "EPERM"
    assert code(lambda: hv.get_param(guest, DOMID_SELF, HVM_PARAM_STORE_EVTCHN)) == "ENOENT"
    hv.destroy_domain(0, other)
    assert code(lambda: hv.memory(0, other)) == "ESRCH"


def test_an_unbound_port_is_bound_only_by_its_remote_domain() -> None:
    hv = Hypervisor()
    guest = hv.create_domain(0, "guest", 4).domid
    intruder = hv.create_domain(0, "intruder", 4).domid
    port = hv.alloc_unbound(0, guest, 0)  # the domain builder's xenstore channel
    assert code(lambda: hv.alloc_unbound(guest, intruder, guest)) == "EPERM"
    assert code(lambda: hv.bind_interdomain(intruder, guest, port.port)) == "EPERM"
    bound = hv.bind_interdomain(0, guest, port.port)
    assert (bound.recv, bound.send) == (port.send, port.recv)
    assert port.state is PortState.INTERDOMAIN and port.remote_port == bound.port
    assert code(lambda: hv.bind_interdomain(0, guest, port.port)) == "EINVAL"
    hv.close_port(0, bound.port)  # the guest's end is unbound for dom0 again
    assert port.state is PortState.UNBOUND and port.remote_dom == 0
    assert hv.released == [bound.recv]  # the channel only the closed end waited on
    again = hv.bind_interdomain(0, guest, port.port)
    assert again.recv == port.send


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_the_process_shares_pages_and_channels_between_domains(tmp_path: Path) -> None:
    async def main() -> None:
        server = HypervisorServer()
        await server.listen(str(tmp_path / "hv" / "socket"))
        assert os.stat(tmp_path / "hv" / "socket").st_mode & 0o077 == 0
        dom0 = await HypervisorClient.connect(str(tmp_path / "hv" / "socket"))
        domid, handle = await dom0.create_domain("guest", pages=4)
        guest = await HypervisorClient.from_fd(handle.detach())
        assert (dom0.domid, guest.domid) == (0, domid)

        port = await dom0.alloc_unbound(domid, 0)
        await dom0.set_param(domid, HVM_PARAM_STORE_PFN, 2)
        await dom0.set_param(domid, HVM_PARAM_STORE_EVTCHN, port)
        assert await guest.get_param(HVM_PARAM_STORE_PFN) == 2
        mine = await guest.map_foreign(DOMID_SELF, await guest.get_param(HVM_PARAM_STORE_PFN))
        theirs = await dom0.map_foreign(domid, 2)
        mine[0:5] = b"hello"
        assert theirs[0:5] == b"hello"

        guest_end = await guest.open_port(await guest.get_param(HVM_PARAM_STORE_EVTCHN))
        dom0_end = await dom0.bind_interdomain(domid, port)
        woken = asyncio.Event()
        dom0_end.start(woken.set)
        guest_end.notify()
        await woken.wait()

        with pytest.raises(HypervisorError) as refused:
            await guest.map_foreign(0, 0)
        assert refused.value.code == "EPERM"
        with pytest.raises(HypervisorError) as outside:
            await guest.map_foreign(DOMID_SELF, 4)
        assert outside.value.code == "EINVAL"
        with pytest.raises(HypervisorError):
            await guest.create_domain("nested")
        assert [d["name"] for d in await dom0.domains()] == ["Domain-0", "guest"]

        memfd = server.memory[domid]  # sealed: nobody can truncate a mapped page away
        assert fcntl.fcntl(memfd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
        with pytest.raises(PermissionError):
            os.ftruncate(memfd, 0)

        await dom0.destroy_domain(domid)
        with pytest.raises(ConnectionError):
            await guest.get_param(HVM_PARAM_STORE_PFN)
        del mine, theirs
        await guest.close()
        await dom0.close()
        server.close()

    run(main())


def test_malformed_requests_get_einval_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        server = HypervisorServer()
        await server.listen(str(tmp_path / "socket"))
        dom0 = await HypervisorClient.connect(str(tmp_path / "socket"))
        for op, args in [("set_param", {"domid": "x"}), ("nonsense", {}),
                         ("create_domain", {"name": "", "pages": 1})]:
            with pytest.raises(HypervisorError) as info:
                await dom0.call(op, **args)
            assert info.value.code in ("EINVAL", "ENOSYS")
        assert (await dom0.call("whoami"))[0] == {"domid": 0}
        await dom0.close()
        server.close()

    run(main())
