"""Loading a site: resources, content types, ETags, Last-Modified across reloads, paths."""

from __future__ import annotations

import pytest
from fata.platform.kv_host import HostKV
from fata_www.paths import PathError, encode, resolve
from fata_www.site import SiteError, build_site, content_type, load_site
from wwwtest_util import LOADED, SAMPLE_FILES, sha256


def test_resources_of_a_directory(site_dir) -> None:
    site = load_site(HostKV(site_dir), "", LOADED)
    assert set(site.resources) == {"/" + k for k in SAMPLE_FILES if k != ".hidden"}
    for key, body in SAMPLE_FILES.items():
        if key == ".hidden":
            continue
        r = site.resources["/" + key]
        assert r.body == body and r.sha256 == sha256(body)
        assert r.etag == f'"{sha256(body)[:32]}"' and r.last_modified == LOADED
    assert site.directories == {"/", "/docs", "/img", "/nodir", "/nodir/deep"}


def test_load_under_a_prefix_of_the_host_file_system(site_dir) -> None:
    site = load_site(HostKV("/"), str(site_dir), LOADED)
    assert site.get("/docs/index.html").body == SAMPLE_FILES["docs/index.html"]


def test_dot_and_relative_prefixes(site_dir, monkeypatch) -> None:
    confined = load_site(HostKV(site_dir), ".", LOADED)
    assert set(confined.resources) == set(load_site(HostKV(site_dir), "", LOADED).resources)
    relative = load_site(HostKV("/", site_dir.parent), "./site/", LOADED)
    assert set(relative.resources) == set(confined.resources)


def test_empty_or_missing_site_is_an_error(tmp_path) -> None:
    with pytest.raises(SiteError):
        load_site(HostKV("/"), str(tmp_path / "missing"), LOADED)
    (tmp_path / ".only-hidden").write_text("x")
    with pytest.raises(SiteError):
        load_site(HostKV(tmp_path), "", LOADED)


def test_unchanged_files_keep_last_modified_across_a_reload() -> None:
    old = build_site({"a.txt": b"same", "b.txt": b"old"}, LOADED)
    new = build_site({"a.txt": b"same", "b.txt": b"new"}, LOADED + 100, old)
    assert new.get("/a.txt").last_modified == LOADED
    assert new.get("/b.txt").last_modified == LOADED + 100


@pytest.mark.parametrize(("name", "expected"), [
    ("index.html", "text/html; charset=utf-8"), ("a.CSS", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"), ("logo.svg", "image/svg+xml; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"), ("logo.png", "image/png"),
    ("font.woff2", "font/woff2"), ("README", "application/octet-stream"),
    ("archive.tar.gz", "application/gzip"),
])
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected


@pytest.mark.parametrize(("target", "path"), [
    (b"/", "/"), (b"/a/b", "/a/b"), (b"/a/b/", "/a/b/"), (b"/a/./b", "/a/b"),
    (b"/a/b/..", "/a/"), (b"/a/b/.", "/a/b/"), (b"/a//b", "/a/b"), (b"/a/%62", "/a/b"),
    (b"/a?x=/../..", "/a"), (b"http://h:8080/x", "/x"), (b"http://h", "/"),
    (b"/caf%C3%A9", "/caf\u00e9"), (b"/%25", "/%"),
])
def test_resolve(target: bytes, path: str) -> None:
    assert resolve(target) == path


@pytest.mark.parametrize(("target", "status"), [
    (b"/..", 400), (b"/a/../..", 400), (b"/%2e%2e", 400), (b"/a%2fb", 404), (b"/a%5cb", 404),
    (b"/a%00", 400), (b"/a\x01", 400), (b"/%", 400), (b"/%g0", 400), (b"/%c3", 404),
    (b"x", 400), (b"/#frag", 400), (b"/" + b"x" * 256, 404),
])
def test_resolve_refuses(target: bytes, status: int) -> None:
    with pytest.raises(PathError) as info:
        resolve(target)
    assert info.value.status == status


def test_encode_round_trips() -> None:
    for path in ("/", "/a b/c%d", "/caf\u00e9/menu.txt", "/x?y#z"):
        assert resolve(encode(path)) == path
