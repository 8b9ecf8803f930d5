"""Cache-Control per path pattern and the security headers: in the memoised answers (fast
path), in the slow path's 200/206/304, and from the running appliance over curl."""

from __future__ import annotations

import subprocess

import pytest
from fata_www.policy import SECURITY_HEADERS, HeaderPolicy, PolicyError
from wwwtest_util import SAMPLE_FILES, exchange, get, parse_responses, www_on

RULES = ["/docs/*=public, max-age=3600", "/*.css=public, max-age=31536000, immutable",
         "/*=no-cache"]


def _server(rules=RULES, security=True):
    from fata_www.engine import HttpServer, Limits
    from fata_www.responses import Responses
    from fata_www.site import build_site
    from wwwtest_util import LOADED

    site = build_site(SAMPLE_FILES, LOADED)
    return HttpServer(Responses(site, HeaderPolicy.parse(rules, security)), Limits())


@pytest.mark.parametrize("target, expected", [
    ("/docs/guide.txt", "public, max-age=3600"),
    ("/style.css", "public, max-age=31536000, immutable"),
    ("/", "no-cache"),  # the index: its file's path, /index.html
    ("/img/logo.png", "no-cache"),
])
def test_the_first_matching_rule_sets_cache_control(target: str, expected: str) -> None:
    server = _server()
    for extra in ((), ("Range: bytes=0-0",), ("Accept-Encoding: gzip",)):
        (resp,) = parse_responses(exchange(server, get(target, *extra))[0])
        assert resp.status in (200, 206)
        assert resp.headers["cache-control"] == expected, (target, extra)
        for name, value in SECURITY_HEADERS:
            assert resp.headers[name.decode().lower()] == value.decode()
    (first,) = parse_responses(exchange(server, get(target))[0])
    (again,) = parse_responses(exchange(server, get(target, f"If-None-Match: {first.headers['etag']}"))[0])
    assert again.status == 304 and again.headers["cache-control"] == expected


def test_without_rules_no_extra_headers() -> None:
    (resp,) = parse_responses(exchange(_server([], False), get("/style.css"))[0])
    assert "cache-control" not in resp.headers and "x-frame-options" not in resp.headers


@pytest.mark.parametrize("rule", ["docs/*=x", "/docs/*", "/a=", "/a=bad\nvalue"])
def test_a_bad_rule_is_named(rule: str) -> None:
    with pytest.raises(PolicyError, match="--cache-control"):
        HeaderPolicy.parse([rule])


@pytest.mark.tool("curl")
def test_the_running_appliance_sends_them(tmp_path) -> None:
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_bytes(b"<p>hi</p>\n")
    (site / "assets" / "app.js").write_bytes(b"console.log(1)\n")
    args = ["--site", str(site), "--cache-control", "/assets/*=public, max-age=31536000",
            "--cache-control", "/*=no-cache", "--security-headers"]
    with www_on("socket", args, tmp_path) as app:
        heads = {}
        for path in ("/", "/assets/app.js"):
            done = subprocess.run(["curl", "--http1.1", "-sS", "-D", "-", "-o", "/dev/null",
                                   "--max-time", "20", app.url(path)],
                                  capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            heads[path] = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in done.stdout.splitlines()[1:])
                           if k}
    assert heads["/"]["cache-control"] == "no-cache"
    assert heads["/assets/app.js"]["cache-control"] == "public, max-age=31536000"
    assert heads["/"]["x-content-type-options"] == "nosniff"
