"""The ``--net direct`` platform: options, the CAP_NET_ADMIN error, DHCP, and the DNS
appliance running unchanged on Fata's stack, queried with dig over UDP and TCP."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fata.net import dhcp
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.platform import PlatformError, direct
from fata.platform import netif as netif_platform
from fata.platform.tap import TapNetif

from ._netns import Lab, needs_tun, sh

REPO = Path(__file__).resolve().parents[2]


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    direct.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_need_no_options() -> None:
    opts = options()
    assert (opts.netif, opts.host_ipv4, opts.mtu, opts.dhcp) == ([], "10.77.0.1/24", 1500, False)
    config, host = direct._parse(opts)
    assert str(config) == "10.77.0.2/24" and host == "10.77.0.1/24"
    config, host = direct._parse(options("--ipv4", "192.0.2.5/28", "--ipv4-gateway",
                                         "192.0.2.1", "--host-ipv4", "none"))
    assert str(config) == "192.0.2.5/28 via 192.0.2.1" and host is None


@pytest.mark.parametrize("argv", [["--ipv4", "10.1.2.300/24"], ["--dhcp", "--ipv4", "10.0.0.2/24"],
                                  ["--mtu", "100"], ["--host-ipv4", "bogus"]])
def test_bad_options_are_one_sentence_errors(argv: list[str]) -> None:
    with pytest.raises(PlatformError):
        direct._parse(options(*argv))


def test_netif_option_forms() -> None:
    short, named = netif_platform.netif_choices(options(
        "--netif", "fata7", "--netif", "inside=tap:ftap-in", "--netif", "outside=if:veth1"))
    assert short == "fata7"
    assert named == {"inside": netif_platform.NetifChoice("tap", "ftap-in"),
                     "outside": netif_platform.NetifChoice("if", "veth1")}
    assert netif_platform.default_choice("port1") == netif_platform.NetifChoice("tap",
                                                                                "fata-port1")


@pytest.mark.parametrize("bad", ["inside=usb:x", "inside=tap:", "=if:veth0",
                                 "inside=if:a-name-far-too-long", "x/y"])
def test_bad_netif_options_are_one_sentence_errors(bad: str) -> None:
    with pytest.raises(PlatformError, match="--netif"):
        netif_platform.netif_choices(options("--netif", bad))
    with pytest.raises(PlatformError, match="given twice"):
        netif_platform.netif_choices(options("--netif", "a=if:x", "--netif", "a=tap:y"))


@pytest.mark.root  # to drop CAP_NET_ADMIN with setpriv
@pytest.mark.tool("setpriv")
def test_without_cap_net_admin_says_what_is_needed() -> None:
    code = ("import argparse, asyncio\n"
            "from fata.platform import PlatformError, direct\n"
            "from fata.platform.registry import DeviceContext\n"
            "from fata.platform.unix import UnixConsole\n"
            "p = argparse.ArgumentParser(); direct.add_arguments(p)\n"
            "o = p.parse_args(['--netif', 'fatanocap0'])\n"
            "ctx = DeviceContext.standalone(o, UnixConsole('t', 'info'))\n"
            "try:\n"
            "    asyncio.run(direct.open_stack('stack', {'kind': 'stack'}, ctx))\n"
            "except PlatformError as e:\n"
            "    print(e)\n")
    done = subprocess.run(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ, timeout=60)
    assert "needs CAP_NET_ADMIN" in done.stdout, done.stdout + done.stderr
    assert done.stdout.count(".") <= 2  # one sentence (the address form has none)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "core"), str(REPO / "appliances" / "dns")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def lab():
    lab = Lab("plat")
    lab.create()
    yield lab
    lab.destroy()


@pytest.mark.root
@needs_tun
@pytest.mark.tool("ip", "ping", "dig")
def test_dns_appliance_over_direct_with_default_options(lab: Lab) -> None:
    """`fata run appliances/dns --net direct` with no platform options, inside a namespace."""
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", lab.host, sys.executable, "-m", "fata", "run",
            str(REPO / "appliances" / "dns"), "--net", "direct", "--", "--listen", "10.77.0.2",
            "--port", "53", stderr=asyncio.subprocess.PIPE, env=_env())
        assert proc.stderr is not None
        log = []
        try:
            while not any("serving" in line for line in log):
                line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
                assert line, "\n".join(log)
                log.append(line)
            assert any("answers on 10.77.0.2 via TAP fata0, host side 10.77.0.1/24" in line
                       for line in log), log
            rc, out = await lab.run("ping", "-c", "1", "-W", "2", "10.77.0.2")
            assert rc == 0, out
            for extra in ([], ["+tcp"]):
                rc, out = await lab.run("dig", *extra, "+time=2", "+tries=2", "@10.77.0.2",
                                        "example.org", "SOA")
                assert rc == 0 and "status: NOERROR" in out and "ns1.example.org." in out, out
                rc, out = await lab.run("dig", *extra, "+time=2", "+tries=2", "+short",
                                        "@10.77.0.2", "www.example.org", "A")
                assert rc == 0 and out.strip(), out
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
    asyncio.run(main())


@pytest.mark.root
@needs_tun
@pytest.mark.tool("ip", "ping", "dnsmasq")
def test_dhcp_against_dnsmasq(lab: Lab) -> None:
    async def main() -> None:
        name = f"fdhcp{os.getpid() % 10000}"
        netif = TapNetif.open(name)
        sh("ip", "link", "set", name, "netns", lab.host)
        sh("ip", "-n", lab.host, "addr", "add", "10.233.0.1/24", "dev", name)
        sh("ip", "-n", lab.host, "link", "set", name, "up")
        with tempfile.TemporaryDirectory() as tmp:
            server = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", lab.host, "dnsmasq", "--no-daemon", "--port=0",
                f"--interface={name}", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--dhcp-range=10.233.0.50,10.233.0.60,255.255.255.0,5m",
                "--dhcp-option=3,10.233.0.1", f"--dhcp-leasefile={tmp}/leases",
                f"--pid-file={tmp}/pid", stderr=asyncio.subprocess.DEVNULL)
            stack = DirectStack(netif, None)
            stack.start()
            try:
                await stack.run_dhcp(timeout=20)
                address = str(stack.addresses[0])
                assert address.startswith("10.233.0.") and 50 <= int(address.split(".")[3]) <= 60
                assert stack.config is not None and stack.config.gateway == bytes([10, 233, 0, 1])
                rc, out = await lab.run("ping", "-c", "1", "-W", "2", address)
                assert rc == 0, out
                assert stack.dhcp is not None and stack.dhcp.state == dhcp.DhcpState.BOUND
            finally:
                await stack.close()
                server.terminate()
                await server.wait()
    asyncio.run(main())


@pytest.mark.root
@needs_tun
@pytest.mark.tool("ip", "ping", "setpriv")
def test_precreated_tap_works_without_cap_net_admin(lab: Lab) -> None:
    """An administrator's persistent, configured TAP is usable by an unprivileged appliance."""
    sh("ip", "netns", "exec", lab.host, "ip", "tuntap", "add", "fpre0", "mode", "tap")
    sh("ip", "-n", lab.host, "addr", "add", "10.77.0.1/24", "dev", "fpre0")
    sh("ip", "-n", lab.host, "link", "set", "fpre0", "up")
    code = ("import argparse, asyncio, subprocess\n"
            "from fata.platform import direct\n"
            "from fata.platform.registry import DeviceContext\n"
            "from fata.platform.unix import UnixConsole\n"
            "p = argparse.ArgumentParser(); direct.add_arguments(p)\n"
            "o = p.parse_args(['--netif', 'fpre0'])\n"
            "ctx = DeviceContext.standalone(o, UnixConsole('t', 'info'))\n"
            "async def main():\n"
            "    stack = await direct.open_stack('stack', {'kind': 'stack'}, ctx)\n"
            "    ping = await asyncio.create_subprocess_exec(\n"
            "        'ping', '-c', '1', '-W', '2', '10.77.0.2', stdout=subprocess.DEVNULL)\n"
            "    print('ping', await ping.wait())\n"
            "    await stack.close()\n"
            "asyncio.run(main())\n")
    try:
        done = subprocess.run(["ip", "netns", "exec", lab.host, "setpriv",
                               "--inh-caps=-net_admin", "--bounding-set=-net_admin",
                               sys.executable, "-c", code], capture_output=True, text=True,
                              env=os.environ, timeout=60)
        assert "ping 0" in done.stdout, done.stdout + done.stderr
        assert "answers on 10.77.0.2 via TAP fpre0" in done.stderr
    finally:
        subprocess.run(["ip", "netns", "exec", lab.host, "ip", "tuntap", "del", "fpre0",
                        "mode", "tap"], capture_output=True)


def test_tcp_congestion_option_reaches_every_connection() -> None:
    from fata.net.tcp.congestion import Cubic
    from fata.platform.memory import MemoryWire

    assert options().tcp_congestion == "newreno"
    assert options("--tcp-congestion", "cubic").tcp_congestion == "cubic"

    async def main() -> None:
        wire = MemoryWire()
        a = DirectStack(wire.a, Ipv4Config.from_text("10.0.0.1/24"), congestion="cubic")
        b = DirectStack(wire.b, Ipv4Config.from_text("10.0.0.2/24"))
        a.start()
        b.start()
        listener = await b.tcp_listen(None, 0, lambda flow: flow.read())
        flow = await a.tcp_connect("10.0.0.2", listener.local[1], timeout=5)
        assert isinstance(flow.connection.cc, Cubic)  # type: ignore[attr-defined]
        await a.close()
        await b.close()

    asyncio.run(main())
