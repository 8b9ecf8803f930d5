"""Brotli and gzip variants, made at load or taken from the site's ``X.br``/``X.gz``: chosen
by Accept-Encoding q-values, with Vary, their own ETag, and conditionals and ranges
applying to the representation chosen."""

from __future__ import annotations

import gzip

import brotli
import pytest
from fata_www.engine import HttpServer
from fata_www.responses import Responses, choose_encoding, wants_gzip
from fata_www.site import build_site
from wwwtest_util import LOADED, SAMPLE_FILES, exchange, get, parse_responses, sha256

GUIDE = SAMPLE_FILES["docs/guide.txt"]
IDENTITY_TAG = f'"{sha256(GUIDE)[:32]}"'
GZIP_TAG = f'"{sha256(GUIDE)[:32]}-gz"'
BR_TAG = f'"{sha256(GUIDE)[:32]}-br"'


@pytest.mark.parametrize(("value", "expected"), [
    (b"gzip", True), (b"gzip, deflate, br", True), (b"GZIP", True), (b"x-gzip", True),
    (b"*", True), (b"gzip;q=0.5", True), (b"br;q=1.0, gzip;q=0.8", True),
    (b"gzip;q=0", False), (b"identity;q=1, gzip;q=0.5", False), (b"br", False),
    (b"identity", False), (b"*;q=0", False), (b"", False), (b"gzip;q=2", False),
    (b"gzip;q=abc", False), (b"gzip;;", False), (b"*;q=0.3, identity;q=0.5", False),
    (b"identity;q=0, *", True),
])
def test_wants_gzip(value: bytes, expected: bool) -> None:
    assert wants_gzip(value) is expected


@pytest.mark.parametrize(("value", "expected"), [
    (b"gzip, deflate, br", b"br"), (b"br;q=0.9, gzip", b"gzip"), (b"br", b"br"),
    (b"gzip", b"gzip"), (b"*", b"br"), (b"br;q=0, *", b"gzip"), (b"identity", None),
    (b"br;q=0.5, identity;q=0.8", None), (b"", None), (b"br;q=x", None), (b"deflate", None),
    (b"x-gzip;q=0.3, br;q=0.2", b"gzip"),
])
def test_choose_encoding(value: bytes, expected: bytes | None) -> None:
    assert choose_encoding(value) == expected


@pytest.mark.parametrize("extra", [(), ("X-Slow: 1",)])
def test_brotli_is_preferred_on_both_paths(server, extra: tuple[str, ...]) -> None:
    out, conn = exchange(server, get("/docs/guide.txt", "Accept-Encoding: gzip, br", *extra))
    r = parse_responses(out)[0]
    assert r.status == 200 and brotli.decompress(r.body) == GUIDE
    assert r.header("content-encoding") == "br" and r.header("vary") == "Accept-Encoding"
    assert r.header("etag") == BR_TAG and r.header("content-length") == str(len(r.body))
    assert conn.fast_answers == (0 if extra else 1)


@pytest.mark.parametrize("extra", [(), ("X-Slow: 1",)])
def test_gzip_variant_on_both_paths(server, extra: tuple[str, ...]) -> None:
    out, conn = exchange(server, get("/docs/guide.txt", "Accept-Encoding: gzip", *extra))
    r = parse_responses(out)[0]
    assert r.status == 200 and gzip.decompress(r.body) == GUIDE
    assert r.header("content-encoding") == "gzip" and r.header("vary") == "Accept-Encoding"
    assert r.header("etag") == GZIP_TAG and r.header("content-length") == str(len(r.body))
    assert conn.fast_answers == (0 if extra else 1)


def test_identity_when_not_asked_still_varies(server) -> None:
    for headers in ((), ("Accept-Encoding: identity",), ("Accept-Encoding: gzip;q=0",)):
        r = parse_responses(exchange(server, get("/docs/guide.txt", *headers))[0])[0]
        assert r.body == GUIDE and r.header("content-encoding") is None
        assert r.header("vary") == "Accept-Encoding" and r.header("etag") == IDENTITY_TAG


def test_small_and_binary_files_have_no_variant(server) -> None:
    for target in ("/style.css", "/img/logo.png"):
        r = parse_responses(exchange(server, get(target, "Accept-Encoding: gzip"))[0])[0]
        assert r.status == 200 and r.header("content-encoding") is None
        assert r.header("vary") is None


def test_conditionals_and_ranges_apply_to_the_chosen_representation(server) -> None:
    packed = gzip.compress(GUIDE, compresslevel=9, mtime=0)
    statuses = []
    for headers in ((f"If-None-Match: {GZIP_TAG}", "Accept-Encoding: gzip"),
                    (f"If-None-Match: {GZIP_TAG}",),
                    (f"If-None-Match: {IDENTITY_TAG}", "Accept-Encoding: gzip")):
        r = parse_responses(exchange(server, get("/docs/guide.txt", *headers))[0])[0]
        statuses.append(r.status)
        if r.status == 304:
            assert r.header("vary") == "Accept-Encoding"
    assert statuses == [304, 200, 200]
    r = parse_responses(exchange(server, get("/docs/guide.txt", "Accept-Encoding: gzip",
                                             "Range: bytes=0-9"))[0])[0]
    assert r.status == 206 and r.body == packed[:10]
    assert r.header("content-range") == f"bytes 0-9/{len(packed)}"
    r = parse_responses(exchange(server, get("/docs/guide.txt", "Accept-Encoding: gzip",
                                             "Range: bytes=0-9",
                                             f"If-Range: {IDENTITY_TAG}"))[0])[0]
    assert r.status == 200 and r.body == packed  # If-Range names the other representation


def test_variants_made_at_build_time_are_taken_from_the_site() -> None:
    made = b"\x8b" + brotli.compress(GUIDE)[1:]  # not what load would make: proves the source
    files = dict(SAMPLE_FILES, **{"docs/guide.txt.br": made})
    server = HttpServer(Responses(build_site(files, LOADED)))
    r = parse_responses(exchange(server, get("/docs/guide.txt", "Accept-Encoding: br"))[0])[0]
    assert r.header("content-encoding") == "br" and r.body == made
    r = parse_responses(exchange(server, get("/docs/guide.txt.br"))[0])[0]
    assert r.body == made  # and still a file of its own
