"""Helpers shared by the www tests (a module, not a conftest, so tests can import it)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance_util import (  # noqa: F401 -- re-exported for the tests
    APPLIANCE_STACKS,
    DIRECT_HOST,
    PYTHON,
    ROOT,
    LoggedProcess,
    free_port,
    network_namespace,
    rss_kb,
    wait_until,
)

APPLIANCE = ROOT / "appliances" / "www"
LOADED = 1_700_000_000  # the load time of make_server()'s site (Tue, 14 Nov 2023 22:13:20 GMT)
LOADED_DATE = "Tue, 14 Nov 2023 22:13:20 GMT"
NOW = 1_700_000_100.0

SAMPLE_FILES: dict[str, bytes] = {
    "index.html": b"<!doctype html><title>home</title><p>home</p>\n",
    "style.css": b"body { color: #123; }\n",
    "docs/index.html": b"<p>docs</p>\n",
    "docs/guide.txt": bytes(range(32, 127)) * 40,
    "docs/empty.txt": b"",
    "img/logo.png": bytes(range(256)) * 20,
    "caf\u00e9 menu.txt": "caf\u00e9\n".encode(),
    "nodir/deep/file.json": b'{"ok": true}\n',
    "404.html": b"<p>custom not found</p>\n",
    ".hidden": b"secret\n",
}
"""A small site: an index, a directory with an index, one without, binary and
non-ASCII names, an empty file, a custom 404 page and a hidden file (never served)."""


def make_server(files: dict[str, bytes] | None = None, **limits):
    """An ``HttpServer`` over ``files`` (default :data:`SAMPLE_FILES`)."""
    from fata_www.engine import HttpServer, Limits
    from fata_www.responses import Responses
    from fata_www.site import build_site

    site = build_site(SAMPLE_FILES if files is None else files, LOADED)
    return HttpServer(Responses(site), Limits(**limits))


@dataclass
class Response:
    """One parsed HTTP/1.1 response."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_responses(data: bytes, head_methods: list[bool] | None = None) -> list[Response]:
    """Split a server's output into responses (strictly: CRLF, Content-Length framing);
    ``head_methods[i]`` says the i-th answers a HEAD (no body whatever its length)."""
    out: list[Response] = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n\r\n", pos)
        lines = data[pos:end].decode("latin-1").split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        raw = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep and name == name.strip(), line
            raw.append((name, value.strip()))
        headers = {n.lower(): v for n, v in raw}
        assert len(headers) == len(raw), f"repeated header in {raw}"
        pos = end + 4
        length = int(headers.get("content-length", "0"))
        is_head = head_methods is not None and len(out) < len(head_methods) and head_methods[
            len(out)]
        if is_head or int(status) in (204, 304):
            length = 0
        body = data[pos : pos + length]
        assert len(body) == length, "truncated body"
        pos += length
        out.append(Response(int(status), reason, headers, body, raw))
    return out


def exchange(server, data: bytes | list[bytes], *, now: float = 1.0, wall: float = NOW,
             eof: bool = False):
    """Feed ``data`` (chunks) to a new connection; (output bytes, the connection)."""
    from fata_www.engine import HttpConnection

    conn = HttpConnection(server, 0.0)
    out: list[bytes] = []
    for chunk in [data] if isinstance(data, bytes) else data:
        out += conn.receive(chunk, now, wall)
        while conn.pending:
            out += conn.receive(b"", now, wall)
    if eof:
        out += conn.receive_eof(now, wall)
    return b"".join(out), conn


def get(target: str, *headers: str, method: str = "GET") -> bytes:
    """A request's bytes, with Host."""
    lines = [f"{method} {target} HTTP/1.1", "Host: example.org", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def site_files(root: Path) -> dict[str, bytes]:
    """Every served file of a site directory (hidden ones excluded), by relative key."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(p.startswith(".") for p in rel.split("/")):
            out[rel] = path.read_bytes()
    return out


@functools.cache
def baked_site() -> Path:
    """The default site as the build bakes it (``fata_www.render``), rendered once into a
    temporary directory (the same bytes: rendering is deterministic)."""
    from fata_www.render import render

    out = Path(tempfile.mkdtemp(prefix="fata-www-baked-"))
    render(out)
    return out


def url_path(key: str) -> str:
    """The request-target of the site file ``key`` (percent-encoded)."""
    from fata_www.paths import encode

    return encode("/" + key).decode()


def ca_file() -> str:
    """The development CA the build made (this user's, as the appliance's was)."""
    from fata_www import devcert

    return str(devcert.state_dir() / "ca.pem")


def curl(*args: str) -> subprocess.CompletedProcess:
    """``curl -sS ARGS`` with a time limit."""
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          timeout=30)



def s_client(port: int, *args: str, request: bytes = b"") -> str:
    """``openssl s_client`` with ``request`` written once the handshake is done."""
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", ca_file(),
         "-verify_return_error", "-ign_eof", *args],
        input=request, capture_output=True, timeout=30)
    return out.stdout.decode("latin-1") + out.stderr.decode("latin-1")


class RunningWww(LoggedProcess):
    """``python -m fata run appliances/www [--net NET] -- --listen HOST --port N ARGS``."""

    def __init__(self, args: list[str], tmp: Path, *, net: str = "socket") -> None:
        self.port = free_port()
        self.net = net
        self.host = DIRECT_HOST if net == "direct" else "127.0.0.1"
        self.log = tmp / f"www-{self.port}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "core"), str(APPLIANCE), env.get("PYTHONPATH", "")])
        python = str(PYTHON) if PYTHON.exists() else sys.executable
        self.proc = subprocess.Popen(
            [python, "-m", "fata", "run", str(APPLIANCE), "--net", net, "--",
             "--listen", self.host, "--port", str(self.port), *args],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, path: str, method: str = "GET", headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection()
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"appliance exited with {self.proc.returncode}\n"
                                 f"{self.output()}")
        try:
            return self.request("/")[0] in (200, 308, 404)
        except OSError:
            return False

    def wait(self, timeout: float = 90.0) -> None:
        wait_until(self.answers, timeout, "the appliance answering", self.output)


@contextlib.contextmanager
def www_on(net: str, args: list[str], tmp: Path) -> Iterator[RunningWww]:
    """The appliance on stack ``net`` until the block ends; on ``direct`` inside a network
    namespace made here and joined by this thread for the duration."""
    with contextlib.ExitStack() as stack:
        if net == "direct":
            ns = f"fatawww{os.getpid() % 100000}x{len(tmp.name)}"
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            stack.callback(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True,
                           capture_output=True)
            stack.enter_context(network_namespace(ns))
        app = RunningWww(args, tmp, net=net)
        stack.callback(app.stop)
        app.wait()
        yield app
