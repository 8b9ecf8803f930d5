"""HTTPS set-up without a network: the 308 to HTTPS, HSTS only on the TLS listener's
answers, certificate pairs read through a KV, and the development certificate's renewal."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from fata.platform.kv_dir import DirectoryKV
from fata_www import devcert
from fata_www.engine import HttpServer, Limits
from fata_www.policy import HeaderPolicy, PolicyError
from fata_www.responses import Responses
from fata_www.site import build_site
from fata_www.tlssetup import RedirectResponses, TLSSetupError, load_pairs
from wwwtest_util import LOADED, SAMPLE_FILES, exchange, get, parse_responses


def _redirect(request: bytes, tls_port: int = 443):
    (resp,) = parse_responses(exchange(HttpServer(RedirectResponses(tls_port), Limits()),
                                       request)[0])
    return resp


@pytest.mark.parametrize("host, target, port, location", [
    ("example.org", "/docs/?a=1", 443, "https://example.org/docs/?a=1"),
    ("example.org:8080", "/x", 8443, "https://example.org:8443/x"),
    ("[::1]:8080", "/", 443, "https://[::1]/"),
    ("127.0.0.1", "http://127.0.0.1/abs/form", 4443, "https://127.0.0.1:4443/abs/form"),
])
def test_every_request_gets_a_308_to_the_same_url_over_https(host, target, port, location):
    for method in ("GET", "HEAD", "POST"):
        request = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        resp = _redirect(request.encode(), port) if method != "HEAD" else parse_responses(
            exchange(HttpServer(RedirectResponses(port), Limits()), request.encode())[0],
            [True])[0]
        assert resp.status == 308 and resp.reason == "Permanent Redirect"
        assert resp.headers["location"] == location, method


@pytest.mark.parametrize("host", ["", "exa mple.org", "evil.org/@x", "[::1", "a:b"])
def test_no_redirect_is_built_from_an_unusable_host(host: str) -> None:
    request = "GET / HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host else "") + "\r\n"
    resp = _redirect(request.encode("latin-1"))
    assert resp.status == 400 and "location" not in resp.headers


def test_hsts_only_on_the_secure_answers() -> None:
    site = build_site(SAMPLE_FILES, LOADED)
    policy = HeaderPolicy.parse([], hsts="max-age=600; includeSubDomains")
    secure = Responses(site, policy, secure=True)
    plain = Responses(site, policy, like=secure)
    assert plain.variants == secure.variants and plain.variants  # shared, not redone
    for responses, expected in ((secure, "max-age=600; includeSubDomains"), (plain, None)):
        server = HttpServer(responses, Limits())
        for extra in ((), ("Range: bytes=0-3",), ("Accept-Encoding: gzip",)):
            (resp,) = parse_responses(exchange(server, get("/style.css", *extra))[0])
            assert resp.headers.get("strict-transport-security") == expected, extra


@pytest.mark.parametrize("value", ["includeSubDomains", "max-age=abc", "max-age=1\nX-Evil: 1"])
def test_an_hsts_value_without_max_age_is_refused(value: str) -> None:
    with pytest.raises(PolicyError, match="--hsts"):
        HeaderPolicy.parse([], hsts=value)


def test_pairs_are_read_through_the_store_and_checked(tmp_path: Path) -> None:
    state = devcert.ensure(tmp_path / "a")
    other = devcert.ensure(tmp_path / "b")
    (tmp_path / "b" / "key.pem").rename(tmp_path / "a" / "other-key.pem")
    store = DirectoryKV(tmp_path / "a")
    (pair,) = load_pairs(store, ["cert.pem"], ["key.pem"])
    assert pair.matches("localhost") and not pair.matches("example.org")
    with pytest.raises(TLSSetupError, match="the key is not the certificate's"):
        load_pairs(store, ["cert.pem"], ["other-key.pem"])
    with pytest.raises(TLSSetupError, match=r"no such file missing\.pem"):
        load_pairs(store, ["missing.pem"], ["key.pem"])
    with pytest.raises(TLSSetupError, match="not a PEM certificate chain"):
        load_pairs(store, ["key.pem"], ["key.pem"])
    with pytest.raises(TLSSetupError, match="2 --tls-cert and 1 --tls-key"):
        load_pairs(store, ["cert.pem", "cert.pem"], ["key.pem"])
    assert state != other


def _leaf(directory: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())


def test_the_development_certificate_is_kept_then_renewed(tmp_path: Path) -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    state = devcert.ensure(tmp_path, now)
    first, ca = _leaf(state), (state / "ca.pem").read_bytes()
    assert first.issuer == x509.load_pem_x509_certificate(ca).subject
    names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert (state / "key.pem").stat().st_mode & 0o077 == 0  # private keys: the user's only
    assert (state / "ca-key.pem").stat().st_mode & 0o077 == 0
    devcert.ensure(tmp_path, now + datetime.timedelta(days=300))
    assert _leaf(state) == first  # still valid for more than 30 days: kept
    devcert.ensure(tmp_path, now + datetime.timedelta(days=370))
    renewed = _leaf(state)
    assert renewed != first and (state / "ca.pem").read_bytes() == ca  # same CA, new leaf


def test_the_build_hook_bakes_the_leaf_its_key_and_the_ca(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    out = tmp_path / "out"
    out.mkdir()
    devcert.generate(out, 0)
    state = tmp_path / "state" / "fata" / "www-devcert"
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert (out / name).read_bytes() == (state / name).read_bytes()
