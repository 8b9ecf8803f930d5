"""The run-time KV device: ``kv_runtime()`` in the DSL, ``--kv NAME=DIR`` on ``unix``, and
its provider ``fata.platform.kv_host`` (keys confined to the directory chosen at run time)."""

from __future__ import annotations

import argparse
import asyncio
import os
import textwrap
from pathlib import Path

import pytest
from fata.config import ConfigError, load
from fata.devices import KV, KeyNotFound
from fata.platform import PlatformError
from fata.platform.kv_host import HostKV, open_kv_runtime
from fata.platform.registry import DeviceContext, provider
from fata.platform.unix import UnixConsole
from fata.runtime.args import device_modules, runtime_parser
from fata.runtime.boot import open_devices

CONFIG = """\
from fata.config import Appliance, console, kv_ro, kv_runtime

appliance = Appliance(
    name="reader", version="1", entry="fata_reader.unikernel:start",
    devices={"data": kv_ro("data"), "zones": kv_runtime(), "site": kv_runtime("www-root"),
             "console": console()},
)
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A store directory with nested files, a symlink inside, symlinks out, a FIFO, and a
    secret file next to it that must stay unreachable."""
    root = tmp_path / "store"
    (root / "zones" / "sub").mkdir(parents=True)
    (root / "a.zone").write_bytes(b"A")
    (root / "zones" / "b.zone").write_bytes(b"B")
    (root / "zones" / "sub" / "c.inc").write_bytes(b"C")
    (root / "link.zone").symlink_to("zones/b.zone")
    (tmp_path / "secret").write_bytes(b"SECRET")
    (root / "out-file").symlink_to(tmp_path / "secret")
    (root / "out-dir").symlink_to(tmp_path)
    (root / "out-abs").symlink_to("/etc/hostname")
    os.mkfifo(root / "fifo")
    return root


def test_dsl_declaration_bakes_with_its_run_time_name(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text(CONFIG)
    (tmp_path / "data").mkdir()
    app = load(tmp_path)
    baked = app.bake({})
    assert baked["devices"]["zones"] == {"kind": "kv_runtime", "name": "zones"}
    assert baked["devices"]["site"] == {"kind": "kv_runtime", "name": "www-root"}
    assert baked["devices"]["data"] == {"kind": "kv_ro", "directory": "data"}
    assert "fata.platform.kv_host" in baked["platform_modules"]
    assert app.data_directories() == ["data"]  # nothing of a run-time store is baked


def test_an_image_without_a_run_time_store_does_not_carry_its_provider(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text(CONFIG.replace(', "zones": kv_runtime(), "site": '
                                                       'kv_runtime("www-root")', ""))
    (tmp_path / "data").mkdir()
    assert "fata.platform.kv_host" not in load(tmp_path).bake({})["platform_modules"]


@pytest.mark.parametrize(("decl", "message"), [
    ('kv_runtime("Bad Name")', "kv_runtime() name 'Bad Name' must be lowercase"),
    ("kv_runtime(7)", "kv_runtime() name 7 must be lowercase"),
])
def test_dsl_mistakes_are_located(tmp_path: Path, decl: str, message: str) -> None:
    (tmp_path / "config.py").write_text(textwrap.dedent(f"""\
        from fata.config import Appliance, kv_runtime

        appliance = Appliance(name="a", version="1", entry="a.b:c",
                              devices={{"d": {decl}}})
        """))
    with pytest.raises(ConfigError) as exc:
        load(tmp_path)
    assert exc.value.line == 4 and message in exc.value.message


def test_two_stores_with_one_run_time_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text(textwrap.dedent("""\
        from fata.config import Appliance, kv_runtime

        appliance = Appliance(name="a", version="1", entry="a.b:c",
                              devices={"x": kv_runtime("same"), "y": kv_runtime("same")})
        """))
    with pytest.raises(ConfigError, match="two kv_runtime devices are named 'same'"):
        load(tmp_path)


BAKED = {"name": "t", "version": "1", "keys": {"loop": "asyncio"}, "args": [],
         "devices": {"zones": {"kind": "kv_runtime", "name": "zones"},
                     "site": {"kind": "kv_runtime", "name": "www-root"}}}


def test_registry_names_the_provider_and_its_option_is_added_once() -> None:
    assert provider("kv_runtime", {}) == "fata.platform.kv_host"
    assert provider("kv_runtime", {"net": "direct"}) == "fata.platform.kv_host"
    assert device_modules(BAKED) == ["fata.platform.kv_host"]
    options = runtime_parser(BAKED).parse_args(["--kv", "zones=/a", "--kv", "www-root=/b"])
    assert options.kv == ["zones=/a", "www-root=/b"]
    assert runtime_parser(BAKED).format_help().count("--kv NAME=DIR") == 2  # usage + help


def _open(tmp_path: Path, *kv: str) -> dict:
    async def main() -> dict:
        ctx = DeviceContext.standalone(argparse.Namespace(kv=list(kv)),
                                       UnixConsole("t", "error"), tmp_path)
        ctx.specs = BAKED["devices"]
        return await open_devices(BAKED, ctx)

    return asyncio.run(main())


def test_boot_opens_each_store_on_its_directory(tmp_path: Path, tree: Path) -> None:
    devices = _open(tmp_path, f"zones={tree}", f"www-root={tree / 'zones'}")
    assert isinstance(devices["zones"], KV) and isinstance(devices["site"], KV)
    assert devices["zones"].get("zones/b.zone") == b"B"
    assert devices["site"].get("b.zone") == b"B"
    with pytest.raises(KeyNotFound):
        devices["site"].get("../a.zone")


def test_without_kv_a_store_is_the_host_file_system_from_the_working_directory(
        tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "zones")
    store = _open(tmp_path)["zones"]
    assert store.get("b.zone") == b"B"  # relative: from the working directory
    assert store.get("../a.zone") == b"A"
    assert store.get(str(tree / "a.zone")) == b"A"  # absolute: a host path
    assert store.keys("sub/") == ["sub/c.inc"]


@pytest.mark.parametrize(("options", "message"), [
    (["zones"], "expected NAME=DIR"),
    (["zones="], "expected NAME=DIR"),
    (["zonez=/tmp"], "no run-time data store 'zonez' (it has: www-root, zones)"),
    (["zones=/tmp", "zones=/var"], "'zones' is given twice"),
    (["zones=/nonexistent/dir"], "--kv zones=/nonexistent/dir: not a directory"),
])
def test_bad_kv_options_are_one_sentence(tmp_path: Path, options: list[str],
                                         message: str) -> None:
    with pytest.raises(PlatformError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _open(tmp_path, *options)


def test_reads_are_confined_to_the_directory(tree: Path) -> None:
    kv = HostKV(tree)
    assert kv.get("a.zone") == b"A"
    assert kv.get("zones/sub/c.inc") == b"C"
    assert kv.get("/zones/b.zone") == b"B"  # a leading / is the store's root
    assert kv.get("zones/sub/../b.zone") == b"B"  # .. inside the store is fine
    assert kv.get("link.zone") == b"B"  # a symlink to a file inside
    for key in ["../secret", "zones/../../secret", "/../secret", "out-file", "out-dir/secret",
                "out-abs", str(tree.parent / "secret"), "fifo", "zones", "", ".", "missing",
                "a.zone/x", "nul\x00byte", "//etc/passwd", "/etc/passwd"]:
        with pytest.raises(KeyNotFound):
            kv.get(key)
        assert not kv.exists(key)


def test_keys_list_regular_files_inside_only(tree: Path) -> None:
    kv = HostKV(tree)
    assert kv.keys() == ["a.zone", "link.zone", "zones/b.zone", "zones/sub/c.inc"]
    assert kv.keys("zones/") == ["zones/b.zone", "zones/sub/c.inc"]
    assert kv.keys("zones/s") == ["zones/sub/c.inc"]
    assert kv.keys("/zones/b") == ["/zones/b.zone"]
    assert kv.keys("../") == [] and kv.keys("zones/../../") == []
    assert kv.keys("nowhere/") == []


def test_contents_are_read_again_each_time(tree: Path) -> None:
    kv = HostKV(tree)
    assert kv.get("a.zone") == b"A"
    (tree / "a.zone").write_bytes(b"A2")
    assert kv.get("a.zone") == b"A2"  # run-time data: no cache, the appliance says when
    (tree / "new.zone").write_bytes(b"N")
    assert "new.zone" in kv.keys()


def test_a_file_opened_outside_the_root_is_refused(tree: Path) -> None:
    """The check after the open (a directory swapped for a symlink meanwhile)."""
    kv = HostKV(tree)
    fd = os.open(tree.parent / "secret", os.O_RDONLY)
    try:
        assert not kv._opened_within(fd)
    finally:
        os.close(fd)
    fd = os.open(tree / "a.zone", os.O_RDONLY)
    try:
        assert kv._opened_within(fd)
    finally:
        os.close(fd)


def test_unreadable_file_is_the_hosts_error(tree: Path) -> None:
    (tree / "a.zone").chmod(0)
    kv = HostKV(tree)
    dropped = os.geteuid() == 0
    if dropped:  # root reads every file: read as nobody (the saved uid brings root back)
        os.seteuid(65534)
    try:
        with pytest.raises(PermissionError):
            kv.get("a.zone")
    finally:
        if dropped:
            os.seteuid(0)


def test_open_kv_runtime_alone_knows_its_own_name(tmp_path: Path, tree: Path) -> None:
    async def main() -> KV:
        ctx = DeviceContext.standalone(argparse.Namespace(kv=[f"data={tree}"]),
                                       UnixConsole("t", "error"), tmp_path)
        return await open_kv_runtime("data", {"kind": "kv_runtime", "name": "data"}, ctx)

    assert asyncio.run(main()).get("a.zone") == b"A"
