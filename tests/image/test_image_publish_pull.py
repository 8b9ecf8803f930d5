"""``publish`` + ``pull`` round-trip over a real HTTP server on loopback, and refusals."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fata import image
from fata.image.pulling import index_location

from .conftest import fata_cli, flip_byte, make_tiny, member_data_offset


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served by ``python -m http.server`` on 127.0.0.1, and its URL."""
    root = tmp_path / "www"
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"port (\d+)", line)
        assert match, line
        yield root, f"http://127.0.0.1:{match.group(1)}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def two_images(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("pub")
    first = image.build(tiny_dir, {}, out, log=lambda *a: None)
    newer = make_tiny(tmp_path_factory.mktemp("newer") / "tiny")
    config = newer / "config.py"
    config.write_text(config.read_text().replace('version="0.1.0"', 'version="0.2.0"'))
    second = image.build(newer, {}, out, log=lambda *a: None)
    return [first, second]


def test_publish_writes_the_index(two_images: list[Path], tmp_path: Path) -> None:
    index = image.publish(two_images, tmp_path / "site")
    doc = json.loads(index.read_text())
    assert doc["format"] == "fata-index/1"
    entries = {e["url"]: e for e in doc["images"]}
    assert set(entries) == {"tiny-0.1.0-unix.fata", "tiny-0.2.0-unix.fata"}
    entry = entries["tiny-0.1.0-unix.fata"]
    for field in ("name", "version", "target", "size", "sha256", "signature", "key_id", "url"):
        assert field in entry
    assert entry["size"] == two_images[0].stat().st_size
    assert (tmp_path / "site" / "tiny-0.1.0-unix.fata").read_bytes() == two_images[0].read_bytes()
    # Publishing again is idempotent (same bytes).
    before = index.read_bytes()
    image.publish(two_images[:1], tmp_path / "site")
    assert index.read_bytes() == before


def test_pull_over_http_round_trips(two_images: list[Path], served: tuple[Path, str],
                                    tmp_path: Path) -> None:
    root, url = served
    image.publish(two_images, root)
    bar = io.StringIO()
    pulled = image.pull("tiny", url, tmp_path / "got", [], progress=bar)
    assert pulled.name == "tiny-0.2.0-unix.fata"  # the newest version
    assert pulled.read_bytes() == two_images[1].read_bytes()
    assert "100%" in bar.getvalue()
    older = image.pull("tiny:0.1.0", url + "index.json", tmp_path / "got", [])
    assert older.read_bytes() == two_images[0].read_bytes()
    result = fata_cli("pull", "tiny:0.1.0", "--index", url, "--out", str(tmp_path / "cli"))
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]).read_bytes() == two_images[0].read_bytes()


def test_a_tampered_served_image_is_refused(two_images: list[Path], served: tuple[Path, str],
                                            tmp_path: Path) -> None:
    root, url = served
    image.publish(two_images[:1], root)
    served_file = root / two_images[0].name
    flip_byte(two_images[0], served_file,
              member_data_offset(two_images[0], "lib/python3.11/fata_tiny/unikernel.pyc"))
    out = tmp_path / "got"
    with pytest.raises(image.ImageError, match="does not match the index"):
        image.pull("tiny", url, out, [])
    assert list(out.iterdir()) == []  # no partial file left behind
    result = fata_cli("pull", "tiny", "--index", url, "--out", str(out))
    assert result.returncode == 1 and "does not match the index" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_a_consistently_tampered_index_is_refused_by_the_signature(
    two_images: list[Path], served: tuple[Path, str], tmp_path: Path
) -> None:
    # The attacker controls the server: modified image *and* an index with its digest.
    root, url = served
    index = image.publish(two_images[:1], root)
    served_file = root / two_images[0].name
    flip_byte(two_images[0], served_file,
              member_data_offset(two_images[0], "lib/python3.11/fata_tiny/unikernel.pyc"))
    import hashlib

    doc = json.loads(index.read_text())
    doc["images"][0]["sha256"] = hashlib.sha256(served_file.read_bytes()).hexdigest()
    index.write_text(json.dumps(doc))
    out = tmp_path / "got"
    with pytest.raises(image.ImageError, match=r"fata_tiny/unikernel\.pyc"):
        image.pull("tiny", url, out, [])
    assert list(out.iterdir()) == []


def test_an_untrusted_signer_is_refused_unless_trusted(tiny_dir: Path, served: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    root, url = served
    private, public = image.keygen(tmp_path / "release")
    signed = image.build(tiny_dir, {}, tmp_path / "out", sign_key=private, log=lambda *a: None)
    image.publish([signed], root, trust=[public])
    with pytest.raises(image.ImageError, match="not trusted"):
        image.pull("tiny", url, tmp_path / "got", [])
    assert list((tmp_path / "got").iterdir()) == []
    assert image.pull("tiny", url, tmp_path / "got", [public]).is_file()


def test_pull_from_a_file_url_and_bad_requests(two_images: list[Path], tmp_path: Path) -> None:
    site = tmp_path / "site"
    image.publish(two_images, site)
    assert image.pull("tiny:0.1.0", site.as_uri(), tmp_path / "a", []).is_file()
    assert image.pull("tiny-0.2.0-unix", str(site), tmp_path / "b", []).is_file()
    with pytest.raises(image.ImageError, match="has no image nothing"):
        image.pull("nothing", str(site), tmp_path / "c", [])
    with pytest.raises(image.ImageError, match="cannot fetch"):
        image.pull("tiny", str(tmp_path / "nowhere"), tmp_path / "c", [])
    with pytest.raises(image.ImageError, match="only http, https and file"):
        image.pull("tiny", "ftp://example.invalid/x", tmp_path / "c", [])
    # An index entry pointing outside its directory is refused before any download.
    index = site / "index.json"
    doc = json.loads(index.read_text())
    doc["images"][0]["url"] = "../../etc/passwd"
    index.write_text(json.dumps(doc))
    with pytest.raises(image.ImageError, match="not a plain image file name"):
        image.pull("tiny:0.1.0", str(site), tmp_path / "c", [])
    index.write_text("{not json")
    with pytest.raises(image.ImageError, match="not a valid index"):
        image.pull("tiny", str(site), tmp_path / "c", [])
    shutil.rmtree(tmp_path / "c", ignore_errors=True)


def test_index_location() -> None:
    assert index_location("http://h:1/x/") == "http://h:1/x/index.json"
    assert index_location("http://h:1/x") == "http://h:1/x/index.json"
    assert index_location("https://h/i.json") == "https://h/i.json"
    assert index_location("file:///srv/images/").endswith("/srv/images/index.json")
