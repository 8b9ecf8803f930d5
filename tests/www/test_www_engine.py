"""The HTTP/1.1 engine on byte streams: fast and slow paths, pipelining, directories,
conditionals, ranges, path traversal, limits, malformed input and timeouts."""

from __future__ import annotations

import pytest
from fata_www.dates import http_date
from fata_www.engine import HttpConnection
from fata_www.responses import Responses
from fata_www.site import build_site
from wwwtest_util import (
    LOADED,
    LOADED_DATE,
    NOW,
    SAMPLE_FILES,
    exchange,
    get,
    make_server,
    parse_responses,
    sha256,
)

GUIDE = SAMPLE_FILES["docs/guide.txt"]


def one(server, data: bytes, *, head: bool = False):
    out, conn = exchange(server, data)
    responses = parse_responses(out, [head])
    assert len(responses) == 1, responses
    return responses[0], conn


def test_fast_get_answers_the_prepared_bytes(server) -> None:
    r, conn = one(server, get("/docs/guide.txt", "User-Agent: t", "Accept: */*"))
    assert (r.status, r.body) == (200, GUIDE)
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.header("content-length") == str(len(GUIDE))
    assert r.header("etag") == f'"{sha256(GUIDE)[:32]}"'
    assert r.header("last-modified") == LOADED_DATE
    assert r.header("date") == http_date(NOW).decode()
    assert r.header("accept-ranges") == "bytes"
    assert conn.fast_answers == 1 and not conn.closed


def test_fast_and_slow_paths_give_the_same_answer(server) -> None:
    fast, fast_conn = one(server, get("/style.css"))
    slow, slow_conn = one(server, get("/style.css", "X-Odd: 1"))
    assert fast_conn.fast_answers == 1 and slow_conn.fast_answers == 0
    assert fast.status == slow.status == 200
    assert fast.body == slow.body == SAMPLE_FILES["style.css"]
    assert fast.headers == slow.headers


def test_head_has_the_headers_and_no_body(server) -> None:
    for extra in ((), ("X-Slow: 1",)):
        out, conn = exchange(server, get("/img/logo.png", *extra, method="HEAD"))
        head_end = out.index(b"\r\n\r\n") + 4
        assert head_end == len(out), "a HEAD answer carries no body"
        r = parse_responses(out, [True])[0]
        assert r.status == 200 and r.header("content-type") == "image/png"
        assert r.header("content-length") == str(len(SAMPLE_FILES["img/logo.png"]))
        assert conn.fast_answers == (0 if extra else 1)


def test_pipelined_requests_answered_in_order(server) -> None:
    requests = [get("/style.css"), get("/docs/guide.txt", "Range: bytes=0-3"),
                get("/missing"), get("/", "X-Slow: yes"), get("/docs/index.html")]
    whole = b"".join(requests)
    for chunks in ([whole], [whole[i : i + 1] for i in range(len(whole))],
                   [whole[:37], whole[37:200], whole[200:]]):
        out, conn = exchange(server, chunks)
        rs = parse_responses(out)
        assert [r.status for r in rs] == [200, 206, 404, 200, 200]
        assert [r.body for r in rs] == [SAMPLE_FILES["style.css"], GUIDE[:4],
                                       SAMPLE_FILES["404.html"], SAMPLE_FILES["index.html"],
                                       SAMPLE_FILES["docs/index.html"]]
        assert conn.requests == 5 and not conn.closed
        assert conn.fast_answers == 2  # the first and the last: after a slow one, fast again


def test_max_pipeline_answers_in_batches(server) -> None:
    srv = make_server(max_pipeline=2)
    conn = HttpConnection(srv, 0.0)
    out = conn.receive(get("/style.css") * 5, 1.0, NOW)
    assert len(parse_responses(b"".join(out))) == 2 and conn.pending
    out = conn.receive(b"", 1.0, NOW)
    assert len(parse_responses(b"".join(out))) == 2 and conn.pending
    out = conn.receive(b"", 1.0, NOW)
    assert len(parse_responses(b"".join(out))) == 1 and not conn.pending
    assert conn.requests == 5


@pytest.mark.parametrize(("target", "status", "body"), [
    ("/", 200, SAMPLE_FILES["index.html"]),
    ("/index.html", 200, SAMPLE_FILES["index.html"]),
    ("/docs/", 200, SAMPLE_FILES["docs/index.html"]),
    ("/nodir/", 404, SAMPLE_FILES["404.html"]),
    ("/nodir/deep/file.json", 200, SAMPLE_FILES["nodir/deep/file.json"]),
    ("/missing.html", 404, SAMPLE_FILES["404.html"]),
    ("/.hidden", 404, SAMPLE_FILES["404.html"]),
    ("/caf%C3%A9%20menu.txt", 200, SAMPLE_FILES["caf\u00e9 menu.txt"]),
    ("/docs/empty.txt", 200, b""),
    ("/style.css?v=3", 200, SAMPLE_FILES["style.css"]),
    ("http://example.org/style.css", 200, SAMPLE_FILES["style.css"]),
])
def test_targets(server, target: str, status: int, body: bytes) -> None:
    r, _ = one(server, get(target))
    assert (r.status, r.body) == (status, body)


def test_directory_without_slash_redirects(server) -> None:
    r, _ = one(server, get("/docs"))
    assert r.status == 301 and r.header("location") == "/docs/"
    r, _ = one(server, get("/nodir/deep?x=1"))
    assert r.status == 301 and r.header("location") == "/nodir/deep/?x=1"


def test_builtin_404_without_a_404_page() -> None:
    srv = make_server({"index.html": b"hi"})
    r, _ = one(srv, get("/nope"))
    assert r.status == 404 and r.body == b"404 Not Found\n"
    assert r.header("content-type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "BREW"])
def test_other_methods_get_405_with_allow(server, method: str) -> None:
    data = get("/index.html", "Content-Length: 5", method=method) + b"hello" + get("/style.css")
    out, conn = exchange(server, data)
    rs = parse_responses(out)
    assert [r.status for r in rs] == [405, 200]  # the body was read; the connection goes on
    assert rs[0].header("allow") == "GET, HEAD, OPTIONS"
    assert not conn.closed


def test_options(server) -> None:
    r, _ = one(server, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 200 and r.header("allow") == "GET, HEAD, OPTIONS"
    r, _ = one(server, get("/style.css", method="OPTIONS"))
    assert r.status == 200 and r.header("allow") == "GET, HEAD, OPTIONS" and r.body == b""


def etag_of(key: str) -> str:
    return f'"{sha256(SAMPLE_FILES[key])[:32]}"'


@pytest.mark.parametrize(("headers", "status"), [
    ((f"If-None-Match: {etag_of('style.css')}",), 304),
    ((f"If-None-Match: W/{etag_of('style.css')}",), 304),  # weak comparison
    ((f'If-None-Match: "other", {etag_of("style.css")}',), 304),
    (("If-None-Match: *",), 304),
    (('If-None-Match: "other"',), 200),
    ((f"If-Modified-Since: {LOADED_DATE}",), 304),
    ((f"If-Modified-Since: {http_date(LOADED + 60).decode()}",), 304),
    ((f"If-Modified-Since: {http_date(LOADED - 1).decode()}",), 200),
    (("If-Modified-Since: not a date",), 200),
    (("If-Modified-Since: Tuesday, 14-Nov-23 22:13:20 GMT",), 304),  # RFC 850
    (("If-Modified-Since: Tue Nov 14 22:13:20 2023",), 304),  # asctime
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    (('If-None-Match: "other"', f"If-Modified-Since: {LOADED_DATE}"), 200),
    (('If-Match: "other"',), 412),
    ((f"If-Match: {etag_of('style.css')}",), 200),
    ((f"If-Match: W/{etag_of('style.css')}",), 412),  # strong comparison
    ((f"If-Unmodified-Since: {http_date(LOADED - 1).decode()}",), 412),
    ((f"If-Unmodified-Since: {LOADED_DATE}",), 200),
])
def test_conditionals(server, headers: tuple[str, ...], status: int) -> None:
    r, conn = one(server, get("/style.css", *headers))
    assert r.status == status
    if status == 304:
        assert r.body == b"" and r.header("etag") == etag_of("style.css")
        assert r.header("last-modified") == LOADED_DATE
    if status == 200:
        assert r.body == SAMPLE_FILES["style.css"]
    assert conn.fast_answers == 0 and not conn.closed


def test_head_conditional_is_304(server) -> None:
    r, _ = one(server, get("/style.css", f"If-None-Match: {etag_of('style.css')}",
                           method="HEAD"), head=True)
    assert r.status == 304


SIZE = len(GUIDE)


@pytest.mark.parametrize(("spec", "status", "first", "last"), [
    ("bytes=0-9", 206, 0, 9),
    ("bytes=10-", 206, 10, SIZE - 1),
    ("bytes=-5", 206, SIZE - 5, SIZE - 1),
    (f"bytes=-{SIZE * 2}", 206, 0, SIZE - 1),
    (f"bytes=100-{SIZE * 3}", 206, 100, SIZE - 1),
    (f"bytes={SIZE - 1}-{SIZE - 1}", 206, SIZE - 1, SIZE - 1),
    ("BYTES = 3-4", 206, 3, 4),
    (f"bytes={SIZE}-", 416, None, None),
    ("bytes=-0", 416, None, None),
    ("bytes=5-1", 200, None, None),  # invalid: ignored
    ("bytes=0-1,5-6", 200, None, None),  # several: the whole representation
    ("items=0-1", 200, None, None),
    ("bytes=x-y", 200, None, None),
    ("bytes=-", 200, None, None),
])
def test_ranges(server, spec: str, status: int, first: int | None, last: int | None) -> None:
    r, conn = one(server, get("/docs/guide.txt", f"Range: {spec}"))
    assert r.status == status
    if status == 206:
        assert r.body == GUIDE[first : last + 1]
        assert r.header("content-range") == f"bytes {first}-{last}/{SIZE}"
        assert r.header("content-length") == str(last - first + 1)
    elif status == 416:
        assert r.header("content-range") == f"bytes */{SIZE}"
    else:
        assert r.body == GUIDE
    assert not conn.closed


def test_range_of_an_empty_file_is_unsatisfiable(server) -> None:
    r, _ = one(server, get("/docs/empty.txt", "Range: bytes=0-"))
    assert r.status == 416 and r.header("content-range") == "bytes */0"


def test_range_is_ignored_on_head(server) -> None:
    r, _ = one(server, get("/docs/guide.txt", "Range: bytes=0-1", method="HEAD"), head=True)
    assert r.status == 200 and r.header("content-length") == str(SIZE)


@pytest.mark.parametrize(("if_range", "status"), [
    (etag_of("docs/guide.txt"), 206),
    ('"stale"', 200),
    (f"W/{etag_of('docs/guide.txt')}", 200),  # If-Range needs a strong match
    (LOADED_DATE, 206),
    (http_date(LOADED + 1).decode(), 200),
    ("garbage", 200),
])
def test_if_range(server, if_range: str, status: int) -> None:
    r, _ = one(server, get("/docs/guide.txt", "Range: bytes=0-1", f"If-Range: {if_range}"))
    assert r.status == status
    assert r.body == (GUIDE[:2] if status == 206 else GUIDE)


@pytest.mark.parametrize(("target", "status"), [
    ("/../etc/passwd", 400),
    ("/docs/../../etc/passwd", 400),
    ("/%2e%2e/%2e%2e/etc/passwd", 400),
    ("/%2E%2E/", 400),
    ("/docs/..%2f..%2fetc/passwd", 404),
    ("/docs%2Fguide.txt", 404),
    ("/docs%2fguide.txt", 404),
    ("/docs%5Cguide.txt", 404),
    ("/docs\\guide.txt", 404),
    ("/index.html%00.txt", 400),
    ("/%0aindex.html", 400),
    ("/%zz", 400),
    ("/%4", 400),
    ("/%ff%fe", 404),
    ("/%252e%252e/etc/passwd", 404),
    ("/" + "a" * 300, 404),
    ("/" + "a/" * 70, 404),
    ("/docs/./guide.txt", 200),
    ("//docs//guide.txt", 200),
    ("/docs/x/../guide.txt", 200),
    ("/img/../docs/guide.txt", 200),
    ("/%64ocs/guide.txt", 200),
    ("*", 400),
    ("index.html", 400),
])
def test_traversal_and_odd_paths_never_leave_the_site(server, target: str, status: int) -> None:
    r, conn = one(server, get(target))
    assert r.status == status
    if status == 200:
        assert r.body == GUIDE
    assert not conn.closed  # the request was well framed: keep-alive goes on


def test_oversized_request_line_is_414_and_closes() -> None:
    srv = make_server(max_request_line=100)
    out, conn = exchange(srv, get("/" + "a" * 200) + get("/"))
    rs = parse_responses(out)
    assert [r.status for r in rs] == [414] and rs[0].header("connection") == "close"
    assert conn.closed
    # also when the line's end has not arrived yet
    out, conn = exchange(srv, b"GET /" + b"a" * 150)
    assert [r.status for r in parse_responses(out)] == [414] and conn.closed


def test_oversized_headers_are_431_and_close() -> None:
    srv = make_server(max_header_bytes=1024)
    out, conn = exchange(srv, get("/", *[f"X-H{i}: {'v' * 50}" for i in range(40)]))
    assert [r.status for r in parse_responses(out)] == [431] and conn.closed
    out, conn = exchange(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 2000)
    assert [r.status for r in parse_responses(out)] == [431] and conn.closed


def test_oversized_body_is_413_and_closes() -> None:
    srv = make_server(max_body=100)
    out, conn = exchange(srv, get("/", "Content-Length: 101", method="POST") + b"x" * 101)
    assert [r.status for r in parse_responses(out)] == [413] and conn.closed
    chunked = get("/", "Transfer-Encoding: chunked", method="POST")
    out, conn = exchange(srv, chunked + b"40\r\n" + b"x" * 64 + b"\r\n" + b"40\r\n" + b"x" * 64)
    assert [r.status for r in parse_responses(out)] == [413] and conn.closed


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",  # 505
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",  # 501
    b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello
])
def test_malformed_requests_get_an_error_and_close(server, data: bytes) -> None:
    out, conn = exchange(server, data + get("/"))
    rs = parse_responses(out)
    assert len(rs) == 1 and 400 <= rs[0].status < 600, rs
    assert rs[0].header("connection") == "close" and conn.closed
    assert conn.receive(get("/"), 2.0, NOW) == []  # nothing more after the close


def test_connection_close_and_http10(server) -> None:
    r, conn = one(server, get("/style.css", "Connection: close"))
    assert r.status == 200 and r.header("connection") == "close" and conn.closed
    assert conn.fast_answers == 1  # a plain request that ends the connection is still plain
    slow, slow_conn = one(server, get("/style.css", "Connection: close", "X-Slow: 1"))
    assert slow_conn.fast_answers == 0 and slow.headers == r.headers and slow.body == r.body
    out, conn = exchange(server, get("/style.css", "Connection: close") + get("/"))
    assert [r.status for r in parse_responses(out)] == [200] and conn.closed  # none after
    out, conn = exchange(server, b"GET /style.css HTTP/1.0\r\n\r\n")
    rs = parse_responses(out)
    assert [r.status for r in rs] == [200] and conn.closed


def test_eof_answers_what_is_complete(server) -> None:
    out, conn = exchange(server, get("/style.css") + get("/docs", "X-Slow: 1") + b"GET /",
                         eof=True)
    assert [r.status for r in parse_responses(out)] == [200, 301] and conn.closed


def test_header_timeout_runs_from_the_first_byte_and_trickling_does_not_extend_it() -> None:
    srv = make_server(header_timeout=5.0, idle_timeout=30.0)
    conn = HttpConnection(srv, 100.0)
    assert conn.next_deadline() == 105.0  # from the accept
    for i, byte in enumerate(b"GET / HTTP/1.1\r\nHo"):
        assert conn.receive(bytes((byte,)), 100.0 + i * 0.2, NOW) == []
        assert conn.next_deadline() == 105.0
    assert conn.on_timer(104.9) == [] and not conn.closed
    out = conn.on_timer(105.0)
    assert [r.status for r in parse_responses(b"".join(out))] == [408]
    assert conn.closed and conn.timed_out == "header"


def test_idle_timeout_between_requests() -> None:
    srv = make_server(header_timeout=5.0, idle_timeout=30.0)
    conn = HttpConnection(srv, 0.0)
    assert len(parse_responses(b"".join(conn.receive(get("/"), 1.0, NOW)))) == 1
    assert conn.next_deadline() == 31.0
    assert conn.on_timer(31.0) == [] and conn.closed and conn.timed_out == "idle"
    # a silent connection closes at the header deadline without a 408
    conn = HttpConnection(srv, 0.0)
    assert conn.on_timer(5.0) == [] and conn.closed


def test_a_new_request_after_idle_gets_the_header_deadline() -> None:
    srv = make_server(header_timeout=5.0, idle_timeout=30.0)
    conn = HttpConnection(srv, 0.0)
    conn.receive(get("/"), 1.0, NOW)
    conn.receive(b"GET /", 20.0, NOW)
    assert conn.next_deadline() == 25.0


def test_reload_is_seen_by_the_next_request_of_an_open_connection(server) -> None:
    conn = HttpConnection(server, 0.0)
    first = parse_responses(b"".join(conn.receive(get("/style.css"), 1.0, NOW)))
    new_site = build_site({"style.css": b"new\n"}, LOADED + 5, server.responses.site)
    server.responses = Responses(new_site)
    second = parse_responses(b"".join(conn.receive(get("/style.css"), 2.0, NOW)))
    assert first[0].body == SAMPLE_FILES["style.css"] and second[0].body == b"new\n"


def test_access_log_entries() -> None:
    srv = make_server()
    srv.access_log = True
    _, conn = exchange(srv, get("/style.css") + get("/docs/guide.txt", "Range: bytes=0-1")
                       + b"BAD\r\n\r\n")
    assert conn.log == [(b"GET /style.css HTTP/1.1", 200, len(SAMPLE_FILES["style.css"])),
                        (b"GET /docs/guide.txt HTTP/1.1", 206, 2), (b"-", 400, 0)]
