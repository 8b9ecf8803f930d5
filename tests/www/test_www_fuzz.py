"""Hypothesis feeds garbage to the engine: it never raises, and what it writes is always a
sequence of well-formed HTTP/1.1 responses, ending the connection after an error."""

from __future__ import annotations

from fata_www.paths import encode
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from wwwtest_util import NOW, SAMPLE_FILES, get, make_server, parse_responses

SERVER = make_server(max_request_line=256, max_header_bytes=512, max_body=64, max_pipeline=4)
KNOWN = {200, 206, 301, 304, 400, 404, 405, 408, 412, 413, 414, 416, 431, 500, 501, 505}
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# No HEAD: its answers have a Content-Length but no body, which only the request order
# tells apart (the unit tests cover HEAD); random bytes spelling it are filtered out.
TOKENS = [b"GET", b"POST", b"OPTIONS", b" ", b"  ", b"/", b"*", b"..", b"%2f", b"%",
          b"%00", b"?", b"#", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\n", b"\r",
          b"\r\n\r\n", b":", b"Host", b"Host: x", b"Content-Length: ", b"5", b"-1",
          b"Transfer-Encoding: chunked", b"0\r\n\r\n", b"Range: bytes=", b"0-1", b"-5", b",",
          b"If-None-Match: ", b'"x"', b"*", b"If-Modified-Since: ", b"Connection: close",
          b"\x00", b"\xff", b"\t", b"index.html", b"docs", b"a" * 300] + [
          get(f"/{k}") for k in SAMPLE_FILES]


def run(chunks: list[bytes], eof: bool):
    from fata_www.engine import HttpConnection

    conn = HttpConnection(SERVER, 0.0)
    out: list[bytes] = []
    now = 1.0
    for chunk in chunks:
        out += conn.receive(chunk, now, NOW)
        while conn.pending:
            out += conn.receive(b"", now, NOW)
        now += 0.1
    if eof:
        out += conn.receive_eof(now, NOW)
    else:
        out += conn.on_timer(now + 1000)
    return b"".join(out), conn


def check(out: bytes, conn) -> None:
    """The output parses as HTTP/1.1 responses with known statuses; an error ends it."""
    responses = parse_responses(out)
    assert len(responses) <= conn.requests + 1
    for r in responses:
        assert r.status in KNOWN, r
        assert r.header("date") is not None or r.header("connection") == "close"
    errors = [r for r in responses if r.status in (400, 408, 413, 414, 431, 501, 505)]
    if errors:
        assert errors[-1] is responses[-1] and responses[-1].header("connection") == "close"
    assert conn.closed


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=6), st.booleans())
def test_random_bytes(chunks: list[bytes], eof: bool) -> None:
    assume(b"HEAD" not in b"".join(chunks))
    out, conn = run(chunks, eof)
    check(out, conn)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.integers(1, 64), st.booleans())
def test_request_shaped_garbage(tokens: list[bytes], cut: int, eof: bool) -> None:
    data = b"".join(tokens)
    chunks = [data[i : i + cut] for i in range(0, len(data), cut)]
    out, conn = run(chunks, eof)
    check(out, conn)


@SETTINGS
@given(st.lists(st.sampled_from(sorted(SAMPLE_FILES)), min_size=1, max_size=8),
       st.integers(1, 50))
def test_pipelined_valid_requests_in_any_split(keys: list[str], cut: int) -> None:
    data = b"".join(get(encode("/" + k).decode()) for k in keys)
    chunks = [data[i : i + cut] for i in range(0, len(data), cut)]
    out, conn = run(chunks, True)
    responses = parse_responses(out)
    expected = [(404, SAMPLE_FILES["404.html"]) if k == ".hidden" else (200, SAMPLE_FILES[k])
                for k in keys]
    assert [(r.status, r.body) for r in responses] == expected
    assert conn.requests == len(keys) and conn.closed
