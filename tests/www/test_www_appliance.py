"""The running appliance (``fata run appliances/www``) with real peers: curl, Python's
http.client and raw sockets, on the socket stack and on Fata's own TCP/IP."""

from __future__ import annotations

import gzip
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import brotli
import pytest
from wwwtest_util import (
    APPLIANCE_STACKS,
    SAMPLE_FILES,
    RunningWww,
    baked_site,
    parse_responses,
    rss_kb,
    sha256,
    site_files,
    url_path,
    wait_until,
    www_on,
)

HEADER_TIMEOUT = 1.5
MAX_CONN = 6
BIG = random.Random(7).randbytes(300_000)


def write_site(root: Path, files: dict[str, bytes]) -> Path:
    for key, body in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


@pytest.fixture(scope="module", params=APPLIANCE_STACKS)
def app(request, tmp_path_factory):
    """The appliance on ``request.param``'s stack serving a site directory."""
    net = request.param
    tmp = tmp_path_factory.mktemp(f"www-{net}")
    site = write_site(tmp / "site", {**SAMPLE_FILES, "big.bin": BIG,
                                     "docs/long.html": b"<p>Fata serves this.</p>\n" * 5000})
    args = ["--site", str(site), "--access-log", "--header-timeout", str(HEADER_TIMEOUT),
            "--max-connections", str(MAX_CONN), "--max-header-bytes", "4096"]
    with www_on(net, args, tmp) as a:
        a.site = site
        yield a


def test_every_file_over_http_client_keepalive(app) -> None:
    files = site_files(app.site)
    conn = app.connection()
    try:
        for key, body in files.items():
            conn.request("GET", url_path(key))
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, key
            assert sha256(data) == sha256(body), key
            assert resp.getheader("ETag") == f'"{sha256(body)[:32]}"'
    finally:
        conn.close()


def curl(app, *args: str, path: str = "/") -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "--http1.1", "-sS", "--max-time", "20", *args,
                           app.url(path)], capture_output=True, timeout=30)


@pytest.mark.tool("curl")
def test_every_file_over_curl(app) -> None:
    for key, body in site_files(app.site).items():
        out = curl(app, path=url_path(key))
        assert out.returncode == 0, out.stderr
        assert sha256(out.stdout) == sha256(body), key


@pytest.mark.tool("curl")
def test_every_file_over_curl_compressed(app) -> None:
    encodings = set()
    for key, body in site_files(app.site).items():
        out = curl(app, "--compressed", "-D", str(app.site.parent / "headers"),
                   path=url_path(key))
        assert out.returncode == 0, out.stderr
        assert sha256(out.stdout) == sha256(body), key
        head = (app.site.parent / "headers").read_text().lower()
        encodings.add("content-encoding: br" in head or "content-encoding: gzip" in head)
    assert encodings == {True, False}  # the text files came gzipped, the others not


@pytest.mark.parametrize("coding, decode", [("gzip", gzip.decompress),
                                             ("br", brotli.decompress)])
def test_every_file_encoded_over_http_client(app, coding: str, decode) -> None:
    conn = app.connection()
    seen = set()
    try:
        for key, body in site_files(app.site).items():
            conn.request("GET", url_path(key), headers={"Accept-Encoding": coding})
            resp = conn.getresponse()
            data = resp.read()
            seen.add(resp.getheader("Content-Encoding"))
            if resp.getheader("Content-Encoding") == coding:
                data = decode(data)
            assert resp.status == 200 and sha256(data) == sha256(body), key
    finally:
        conn.close()
    assert seen == {coding, None}


@pytest.mark.tool("curl")
def test_curl_ranges(app) -> None:
    for spec, expected in (("0-99", BIG[:100]), ("-50", BIG[-50:]),
                           ("299990-", BIG[299990:]), ("1000-1999", BIG[1000:2000])):
        out = curl(app, "-r", spec, "-w", "\n%{http_code}", path="/big.bin")
        body, _, code = out.stdout.rpartition(b"\n")
        assert code == b"206" and body == expected, spec
    out = curl(app, "-r", "400000-", "-o", "/dev/null", "-w", "%{http_code}", path="/big.bin")
    assert out.stdout == b"416"


@pytest.mark.tool("curl")
def test_curl_head_and_conditionals(app) -> None:
    out = curl(app, "-I", path="/big.bin")
    head = out.stdout.decode()
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert f"Content-Length: {len(BIG)}\r\n" in head
    assert "Content-Type: application/octet-stream\r\n" in head
    etag = re.search(r'ETag: ("[0-9a-f]{32}")', head).group(1)
    modified = re.search(r"Last-Modified: (.*)\r\n", head).group(1)
    code = curl(app, "-o", "/dev/null", "-w", "%{http_code}", "-H", f"If-None-Match: {etag}",
                path="/big.bin")
    assert code.stdout == b"304"
    code = curl(app, "-o", "/dev/null", "-w", "%{http_code}", "-z", modified, path="/big.bin")
    assert code.stdout == b"304"
    code = curl(app, "-o", "/dev/null", "-w", "%{http_code}", "-z",
                "Mon, 01 Jan 2001 00:00:00 GMT", path="/big.bin")
    assert code.stdout == b"200"
    code = curl(app, "-r", "0-9", "-H", 'If-Range: "stale"', "-o", "/dev/null", "-w",
                "%{http_code}", path="/big.bin")
    assert code.stdout == b"200"


@pytest.mark.tool("curl")
def test_curl_redirects_and_errors(app) -> None:
    out = curl(app, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", path="/docs")
    assert out.stdout.decode() == f"301 {app.url('/docs/')}"
    out = curl(app, "-L", path="/docs")
    assert out.stdout == SAMPLE_FILES["docs/index.html"]
    out = curl(app, "--path-as-is", "-w", " %{http_code}", path="/../../etc/passwd")
    assert out.stdout.endswith(b" 400")
    out = curl(app, "-w", " %{http_code}", path="/nothing")
    assert out.stdout == SAMPLE_FILES["404.html"] + b" 404"
    out = curl(app, "-X", "POST", "-d", "x=1", "-D", "-", "-o", "/dev/null", path="/")
    assert out.stdout.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD, OPTIONS" in out.stdout


def raw(app) -> socket.socket:
    s = socket.create_connection((app.host, app.port), timeout=10)
    return s


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_pipelined_requests_over_one_socket(app) -> None:
    with raw(app) as s:
        s.sendall(b"GET /style.css HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /docs/guide.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=0-4\r\n\r\n"
                  b"HEAD /big.bin HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        rs = parse_responses(read_all(s), [False, False, True, False])
    assert [r.status for r in rs] == [200, 206, 200, 200]
    assert rs[0].body == SAMPLE_FILES["style.css"]
    assert rs[1].body == SAMPLE_FILES["docs/guide.txt"][:5]
    assert rs[3].body == BIG and rs[3].header("connection") == "close"


def test_malformed_and_oversized_requests_get_an_answer_and_a_close(app) -> None:
    for data, status in ((b"NONSENSE\r\n\r\n", 400),
                         (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 5000 + b"\r\n\r\n", 431),
                         (b"GET / HTTP/1.1\r\n\r\n", 400)):
        with raw(app) as s:
            s.sendall(data)
            rs = parse_responses(read_all(s))  # read_all returns: the server closed
        assert [r.status for r in rs] == [status]
    assert app.request("/style.css")[0] == 200  # and everyone else is still served


def test_a_client_pipelining_without_reading_is_held_to_its_reads(app) -> None:
    before = rss_kb(app.proc.pid)
    flood = b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n" * 1000  # 300 MB of answers
    with raw(app) as s:
        s.sendall(flood)  # 36 KB: the socket buffers take it; we read nothing back yet
        assert app.request("/style.css")[2] == SAMPLE_FILES["style.css"]  # others are served
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        grown = rss_kb(app.proc.pid) - before
    assert grown < 64 * 1024, f"{grown} KB more resident"  # a batch of answers, not 300 MB


def test_slowloris_gets_408_at_the_header_timeout(app) -> None:
    with raw(app) as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHo")
        s.sendall(b"s")  # trickling does not extend the deadline
        rs = parse_responses(read_all(s))
        elapsed = time.monotonic() - start
    assert [r.status for r in rs] == [408]
    assert HEADER_TIMEOUT - 0.2 <= elapsed < HEADER_TIMEOUT + 5


def test_max_connections_refuses_new_ones_cleanly(app) -> None:
    held = []
    try:
        for _ in range(MAX_CONN):
            s = raw(app)
            s.sendall(b"GET /style.css HTTP/1.1\r\nHost: a\r\n\r\n")
            held.append(s)
        for s in held:  # each answered, so each holds a slot
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        with raw(app) as extra:
            assert parse_responses(read_all(extra))[0].status == 503
        held[0].sendall(b"GET /style.css HTTP/1.1\r\nHost: a\r\n\r\n")
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200")  # the others unaffected
    finally:
        for s in held:
            s.close()
    wait_until(lambda: app.request("/")[0] == 200, what="a slot free again")


def test_access_log_in_common_log_format(app) -> None:
    app.request("/docs/guide.txt", headers={"Range": "bytes=0-9"})
    line = re.compile(r'\S+ - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] '
                      r'"GET /docs/guide.txt HTTP/1.1" 206 10')
    wait_until(lambda: line.search(app.output()) is not None, what="the log line",
               detail=app.output)


def test_sighup_reloads_and_a_bad_site_keeps_the_old_one(tmp_path) -> None:
    site = write_site(tmp_path / "site", {"index.html": b"one\n", "keep.txt": b"kept\n"})
    app = RunningWww(["--site", str(site)], tmp_path)
    try:
        app.wait()
        etag = app.request("/keep.txt")[1]["etag"]
        (site / "index.html").write_bytes(b"two\n")
        app.signal(signal.SIGHUP)
        wait_until(lambda: app.request("/")[2] == b"two\n", what="the reloaded site",
                   detail=app.output)
        assert app.request("/keep.txt")[1]["etag"] == etag
        for path in site.iterdir():
            path.unlink()
        app.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in app.output(), what="the failed reload",
                   detail=app.output)
        assert app.request("/")[2] == b"two\n"
    finally:
        app.stop()


def test_the_baked_site_is_fatas_own(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    app = RunningWww([], tmp_path)
    try:
        app.wait()
        files = site_files(baked_site())
        assert "index.html" in files and "style.css" in files
        for key, body in files.items():
            status, _, data = app.request(url_path(key))
            assert status == 200 and sha256(data) == sha256(body), key
        status, headers, page = app.request("/")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert b"<h1>Fata" in page and b'href="style.css"' in page
        assert headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"  # the build's
        assert app.request("/.build-epoch")[0] == 404
        assert app.request("/nothing")[0] == 404
    finally:
        app.stop()
