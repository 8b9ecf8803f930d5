"""Shared test configuration: the two markers that skip, with their reason.

- ``root``: the test needs root (network namespaces, TAP devices); skipped off root.
- ``tool(name, ...)``: the test runs Debian tools (real peers such as dig, named, openssl);
  skipped, naming the tool and its package, when one is not installed.  ``make test``
  installs them all (``make tools``, as root), so there nothing skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Tool -> the Debian package that brings it (as the Makefile's DEBIAN_TOOLS names it).
TOOL_PACKAGES = {
    "dig": "dnsutils",
    "kdig": "knot-dnsutils",
    "named": "bind9",
    "named-checkconf": "bind9",
    "nsd": "nsd",
    "nsd-checkconf": "nsd",
    "knotd": "knot",
    "knotc": "knot",
    "dnsperf": "dnsperf",
    "wrk": "wrk",
    "nginx": "nginx-light",
    "ldd": "libc-bin",
    "chroot": "coreutils",
    "dpkg-query": "dpkg",
    "openssl": "openssl",
    "curl": "curl",
    "ip": "iproute2",
    "tc": "iproute2",
    "ping": "iputils-ping",
    "taskset": "util-linux",
    "setpriv": "util-linux",
    "dnsmasq": "dnsmasq-base",
    "ethtool": "ethtool",
    "nc": "netcat-openbsd",
    "h2load": "nghttp2-client",
    "xenstore-write": "xenstore-utils",
    "ss": "iproute2",
    "ovs-vswitchd": "openvswitch-switch",
    "ovsdb-server": "openvswitch-switch",
}


def installed(tool: str) -> bool:
    """Whether ``tool`` is on PATH or in /usr/sbin, which a non-root user's PATH may lack
    (named, nsd, knotd, ip live there): then /usr/sbin joins PATH, so that the tests and the
    programs they start find it by name."""
    if shutil.which(tool) is not None:
        return True
    if not Path("/usr/sbin", tool).is_file():
        return False
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"])
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``root`` tests off root and ``tool`` tests whose tools are missing."""
    root_skip = pytest.mark.skip(
        reason="needs root (network namespaces / TAP); CI runs these as root")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(root_skip)
        for mark in item.iter_markers("tool"):
            if not mark.args:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.tool needs a tool name")
            for tool in mark.args:
                if not installed(tool):
                    package = mark.kwargs.get("package") or TOOL_PACKAGES.get(tool, tool)
                    item.add_marker(pytest.mark.skip(
                        reason=f"needs the Debian tool {tool} (package {package}); "
                               "CI installs it"))
                    break
