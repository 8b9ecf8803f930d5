"""Building images: reproducible bytes, the manifest, and only what the appliance reaches."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from fata import image
from fata.config import ConfigError
from fata.image.manifest import MANIFEST_NAME
from fata.image.paths import cache_home

from .conftest import make_tiny, write_tree


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(MANIFEST_NAME))


def test_two_builds_are_byte_identical(tiny_dir: Path, tiny_image: Path, tmp_path: Path) -> None:
    # The second build compiles everything afresh (bytecode and deflate caches dropped) in a
    # process whose state differs from the first: the bytes must not depend on either.
    shutil.rmtree(cache_home() / "pyc", ignore_errors=True)
    shutil.rmtree(cache_home() / "scan", ignore_errors=True)
    shutil.rmtree(cache_home() / "deflate", ignore_errors=True)
    again = image.build(tiny_dir, {}, tmp_path, log=lambda *a: None)
    assert again != tiny_image
    assert again.read_bytes() == tiny_image.read_bytes()


def test_a_copy_of_the_appliance_elsewhere_builds_the_same_bytes(tiny_image: Path,
                                                                 tmp_path: Path) -> None:
    copy = make_tiny(tmp_path / "somewhere" / "else")
    again = image.build(copy, {}, tmp_path / "out", log=lambda *a: None)
    assert again.read_bytes() == tiny_image.read_bytes()


def test_source_date_epoch_sets_every_timestamp(tiny_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14T22:13:20Z
    path = image.build(tiny_dir, {}, tmp_path, log=lambda *a: None)
    assert manifest_of(path)["build_epoch"] == 1700000000
    with zipfile.ZipFile(path) as archive:
        stamps = {info.date_time for info in archive.infolist()}
        modes = {info.external_attr >> 16 for info in archive.infolist()}
    assert stamps == {(2023, 11, 14, 22, 13, 20)}
    assert modes <= {0o100644, 0o100755}


def test_manifest_lists_every_member_with_size_and_digest(tiny_image: Path) -> None:
    manifest = manifest_of(tiny_image)
    assert manifest["name"] == "tiny" and manifest["version"] == "0.1.0"
    assert manifest["target"] == "unix"
    assert manifest["python"]["version"] == "3.11"
    assert manifest["config"]["entry"] == "fata_tiny.unikernel:start"
    assert "fata development key" in manifest["key_label"]
    with zipfile.ZipFile(tiny_image) as archive:
        names = archive.namelist()
        assert names[:2] == ["MANIFEST.json", "SIGNATURE"]
        listed = {e["path"]: e for e in manifest["files"]}
        assert sorted(listed) == sorted(names[2:]) == names[2:]
        for name in names[2:]:
            data = archive.read(name)
            assert listed[name]["size"] == len(data)
            assert listed[name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed["data/data/greeting.txt"]["kind"] == "data"
    assert listed["lib/python3.11/fata_tiny/unikernel.pyc"]["kind"] == "appliance"
    assert listed["lib/python3.11/fata/runtime/boot.pyc"]["kind"] == "fata"
    assert listed["lib/python3.11/asyncio/__init__.pyc"]["kind"] == "stdlib"
    assert not any(p.endswith(".py") for p in listed), "images hold bytecode, not source"


def test_the_manifest_is_compact_one_line_per_file_and_canonical(tiny_image: Path) -> None:
    from fata.image.manifest import dumps

    with zipfile.ZipFile(tiny_image) as archive:
        data = archive.read(MANIFEST_NAME)
    manifest = json.loads(data)
    assert dumps(manifest) == data  # canonical: what was signed is what dumps makes
    reordered = dict(reversed(list(manifest.items())))
    reordered["files"] = [dict(reversed(list(e.items()))) for e in manifest["files"]]
    assert dumps(reordered) == data
    lines = data.decode().splitlines()
    assert not any(line[:1].isspace() for line in lines)  # no indentation
    padded = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False).encode()
    assert len(data) < len(padded) - 4 * len(manifest["files"])  # no padding either
    for entry in manifest["files"]:
        assert sum(1 for line in lines if f'"path":"{entry["path"]}"' in line) == 1
    assert len(lines) < len(manifest["files"]) + len(manifest) + 3


def test_modules_not_reached_are_not_in_the_image(tiny_image: Path) -> None:
    paths = {e["path"] for e in manifest_of(tiny_image)["files"]}
    modules = {p.removeprefix("lib/python3.11/") for p in paths}
    # No network stack device: neither stack's platform module, nor Fata's TCP/IP.
    assert not any(m.startswith(("fata/net/", "fata/platform/socket_stack", "fata/tls/",
                                 "fata/xen/", "fata/image/")) for m in modules)
    # Development tools stdlib modules reach only lazily stay out; so do unrelated packages.
    for absent in ("unittest/", "doctest.pyc", "pdb.pyc", "tkinter/", "xml/", "email/",
                   "dns/", "cryptography/", "fata_tiny/../tests"):
        assert not any(m.startswith(absent) for m in modules), absent
    assert "fata_tiny/greeting.pyc" in modules
    assert "tests/test_greeting.pyc" not in modules


def _stack_appliance(root: Path) -> Path:
    return write_tree(root, {
        "config.py": '''\
            from fata.config import Appliance, console, stack

            appliance = Appliance(name="net", version="1", entry="fata_net.unikernel:start",
                                  devices={"stack": stack(), "console": console()})
            ''',
        "fata_net/__init__.py": "",
        "fata_net/unikernel.py": "async def start(stack, console, args):\n    pass\n",
    })


def test_socket_image_has_no_tcp_ip_stack(tmp_path: Path) -> None:
    root = _stack_appliance(tmp_path / "net")
    path = image.build(root, {"net": "socket"}, tmp_path / "out", log=lambda *a: None)
    paths = {e["path"] for e in manifest_of(path)["files"]}
    assert "lib/python3.11/fata/platform/socket_stack.pyc" in paths
    assert not any(p.startswith("lib/python3.11/fata/net/") for p in paths)
    assert not any(p.startswith("lib/python3.11/fata/platform/direct") for p in paths)
    assert path.name == "net-1-unix-socket.fata"


def test_direct_image_carries_the_tcp_ip_stack(tmp_path: Path) -> None:
    root = _stack_appliance(tmp_path / "net")
    path = image.build(root, {"net": "direct"}, tmp_path / "out", log=lambda *a: None)
    paths = {e["path"] for e in manifest_of(path)["files"]}
    assert any(p.startswith("lib/python3.11/fata/net/") for p in paths)
    assert not any(p.startswith("lib/python3.11/fata/platform/socket_stack") for p in paths)


def test_default_output_is_images_dist_of_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_tree(repo, {"pyproject.toml": '[project]\nname = "fata"\nversion = "0"\n'})
    appliance = make_tiny(repo / "appliances" / "tiny")
    path = image.build(appliance, {}, log=lambda *a: None)
    assert path.parent == repo / "images" / "dist"


def test_include_brings_a_package_whole(tmp_path: Path) -> None:
    root = make_tiny(tmp_path / "tiny")
    config = (root / "config.py").read_text().replace(
        'args=[', 'include=["json"],\n    args=[')
    (root / "config.py").write_text(config)
    paths = {e["path"] for e in manifest_of(
        image.build(root, {}, tmp_path / "out", log=lambda *a: None))["files"]}
    assert "lib/python3.11/json/tool.pyc" in paths  # reached by no import, included whole


def test_bad_inputs_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no config\.py"):
        image.build(tmp_path, {}, tmp_path / "out")
    root = make_tiny(tmp_path / "tiny")
    with pytest.raises(ConfigError, match="no key 'net'"):
        image.build(root, {"net": "direct"}, tmp_path / "out")
    (root / "fata_tiny" / "unikernel.py").unlink()
    with pytest.raises(image.ImageError, match=r"module fata_tiny\.unikernel .* cannot be found"):
        image.build(root, {}, tmp_path / "out", log=lambda *a: None)
    (root / "fata_tiny" / "unikernel.py").write_text("def start(:\n")
    with pytest.raises(image.ImageError, match="cannot parse"):
        image.build(root, {}, tmp_path / "out", log=lambda *a: None)
    with pytest.raises(image.ImageError, match="target 'vm' is not supported"):
        image.build(root, {}, tmp_path / "out", target="vm")


GENERATOR = '''\
def make(out, epoch):
    (out / "sub").mkdir()
    (out / "sub" / "made.txt").write_text(f"made at {epoch}\\n")


def broken(out, epoch):
    raise RuntimeError("no inputs")
'''


def _generated(root: Path, hook: str) -> Path:
    make_tiny(root)
    config = (root / "config.py").read_text().replace(
        '"data": kv_ro("data")}',
        f'"data": kv_ro("data"), "made": kv_ro("gen/made", generate={hook!r})}}')
    (root / "config.py").write_text(config)
    write_tree(root, {"fata_tiny/hooks.py": GENERATOR})
    return root


def test_a_generate_hook_bakes_what_it_writes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    root = _generated(tmp_path / "tiny", "fata_tiny.hooks:make")
    path = image.build(root, {}, tmp_path / "out", log=lambda *a: None)
    assert not (root / "gen").exists()  # made in a scratch directory, not in the sources
    with zipfile.ZipFile(path) as archive:
        assert archive.read("data/gen/made/sub/made.txt") == b"made at 1700000000\n"
        assert archive.read("data/data/greeting.txt") == b"hello from the data\n"
    again = image.build(root, {}, tmp_path / "again", log=lambda *a: None)
    assert again.read_bytes() == path.read_bytes()


def test_a_failing_or_malformed_hook_is_one_clear_error(tmp_path: Path) -> None:
    root = _generated(tmp_path / "tiny", "fata_tiny.hooks:broken")
    with pytest.raises(image.ImageError,
                       match=r"data generator fata_tiny\.hooks:broken failed: RuntimeError"):
        image.build(root, {}, tmp_path / "out", log=lambda *a: None)
    root = _generated(tmp_path / "tiny2", "not a hook")
    with pytest.raises(ConfigError, match=r"kv_ro\(generate=\.\.\.\) wants 'module:function'"):
        image.build(root, {}, tmp_path / "out", log=lambda *a: None)
