"""A packet-socket port (``--netif NAME=if:IF``) sees VLAN-tagged frames as the wire
carried them.

Linux takes the (outer) VLAN tag off every frame it receives before a packet socket sees
it, and reports it beside the frame (``PACKET_AUXDATA``); a switch reading the port would
see untagged frames and match and forward them wrongly.  Here frames sent by a raw socket
on one end of a veth pair arrive at Fata's port on the other end byte for byte: untagged,
802.1Q-tagged, and double-tagged (802.1ad outside 802.1Q), with the C batch reader and
without it, and in wire mode (a forwarder's: the virtio-net header is read with the frame,
and the port finishes its offloads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.tool("ip")]
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MACS = bytes.fromhex("020000000002" "020000000001")
PAYLOAD = bytes.fromhex("45000014000000004001f93d0a0000010a000002") + bytes(26)
UNTAGGED = MACS + b"\x08\x00" + PAYLOAD
DOT1Q = MACS + bytes.fromhex("8100a00a") + b"\x08\x00" + PAYLOAD  # PCP 5, VID 10
QINQ = MACS + bytes.fromhex("88a80064" "8100000a") + b"\x08\x00" + PAYLOAD  # S-VID 100


@pytest.fixture
def ns():
    name = f"fvl{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # No IPv6: its solicitations would be frames nobody in the test sent.
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"], check=True)
        for cmd in (["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                    ["link", "set", "va", "up"], ["link", "set", "vb", "up"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.parametrize("mode", [[], ["--no-c"], ["--wire"], ["--wire", "--no-c"]],
                         ids=["c", "python", "wire-c", "wire-python"])
def test_tagged_frames_arrive_with_their_tags(ns: str, mode: list[str]) -> None:
    sent = [UNTAGGED, DOT1Q, QINQ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "core"))
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(HERE / "_vlan_probe.py"),
                           *mode, *(f.hex() for f in sent)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    got = [bytes.fromhex(f) for f in json.loads(done.stdout)]
    assert got == sent
