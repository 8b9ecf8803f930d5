"""Only what is reached: stripped shared objects, modules left out and said so, at build
time (the report, the manifest) and at run time (the left-out finder's message)."""

from __future__ import annotations

import json
import shutil
import subprocess
import types
import zipfile
from pathlib import Path

import pytest
from fata import image
from fata.image import leftout
from fata.image.manifest import MANIFEST_NAME
from fata.image.paths import project_root
from fata.image.strip import elf_section_names, strip_tool

from .conftest import fata_cli, write_tree

DNS = (project_root() or Path(".")) / "appliances" / "dns"


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(MANIFEST_NAME))


@pytest.fixture(scope="module")
def dns_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """The DNS socket image built twice into two directories, and the first build's log."""
    if not DNS.is_dir():
        pytest.skip("no appliances/dns in this checkout")
    lines: list[str] = []
    first = image.build(DNS, {"net": "socket"}, tmp_path_factory.mktemp("a"),
                        log=lambda *a: lines.append(" ".join(map(str, a))))
    second = image.build(DNS, {"net": "socket"}, tmp_path_factory.mktemp("b"),
                         log=lambda *a: None)
    return first, second, lines


@pytest.mark.skipif(strip_tool() is None, reason="no strip (binutils) on this machine")
def test_shared_objects_are_stripped_and_rebuilds_are_byte_identical(
        dns_builds: tuple[Path, Path, list[str]]) -> None:
    first, second, _ = dns_builds
    assert first.read_bytes() == second.read_bytes()
    manifest = manifest_of(first)
    with zipfile.ZipFile(first) as archive:
        interp = {e["path"] for e in manifest["files"]
                  if e["kind"] == "interpreter" and e["path"].startswith("interp/")}
        objects = {n: archive.read(n) for n in archive.namelist()
                   if n.endswith(".so") or n in interp}
    assert "lib/python3.11/lib-dynload/unicodedata.cpython-311-x86_64-linux-gnu.so" not in objects
    assert len(objects) >= 10
    for name, data in objects.items():
        sections = elf_section_names(data)
        assert ".dynsym" in sections, name  # what loading needs is kept
        assert ".symtab" not in sections, name
        assert not [s for s in sections if s.startswith(".debug")], name
    stripped = manifest["stripped"]
    assert stripped["files"] == len(objects)
    assert stripped["bytes_after"] == sum(len(d) for d in objects.values())
    assert stripped["bytes_after"] < stripped["bytes_before"] / 1.5


@pytest.mark.skipif(shutil.which("readelf") is None, reason="no readelf to compare with")
def test_the_section_reader_agrees_with_readelf(dns_builds: tuple[Path, Path, list[str]],
                                                tmp_path: Path) -> None:
    with zipfile.ZipFile(dns_builds[0]) as archive:
        name = next(n for n in sorted(archive.namelist()) if n.endswith(".so"))
        data = archive.read(name)
    path = tmp_path / "object.so"
    path.write_bytes(data)
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True,
                         check=True).stdout
    listed = [line.split("]", 1)[1].split()[0] for line in out.splitlines()
              if line.strip().startswith("[") and "]" in line and "Nr" not in line]
    assert [n for n in elf_section_names(data) if n] == [n for n in listed if n != "NULL"]


def test_the_build_reports_what_it_left_out_and_why(
        dns_builds: tuple[Path, Path, list[str]]) -> None:
    first, _, lines = dns_builds
    summary = [line for line in lines if line.startswith("left out ")]
    manifest = manifest_of(first)
    left = manifest["left_out"]
    assert len(summary) == 1 and f"left out {len(left)} module(s)" in summary[0]
    assert sorted(left)[0] in summary[0] and "include=" in summary[0]
    assert left["tarfile"]["importers"] == "shutil"
    assert "inside functions" in left["tarfile"]["why"] and not left["tarfile"]["stand_in"]
    assert "try/except ImportError" in left["ssl"]["why"]  # asyncio copes without TLS
    assert left["importlib.metadata"]["stand_in"]  # dns._features imports it at module level
    paths = {e["path"] for e in manifest["files"]}
    for name in left:
        stem = "lib/python3.11/" + name.replace(".", "/")
        assert not any(p.startswith((stem + ".", stem + "/")) for p in paths), name
    assert "lib/python3.11/__fata_leftout__.pyc" in paths


def test_fata_inspect_shows_stripping_and_what_was_left_out(
        dns_builds: tuple[Path, Path, list[str]]) -> None:
    result = fata_cli("inspect", str(dns_builds[0]))
    assert result.returncode == 0, result.stderr
    assert "stripped  " in result.stdout and "--strip-unneeded" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("left out  "))
    assert "tarfile" in line and "zipfile" in line
    lines = {x[:10]: x for x in result.stdout.splitlines()}
    assert "MB stored: every member but the interpreter's" in lines["closure   "]
    assert "docstrings stripped" in lines["bytecode  "] and "classes of dns" in lines["bytecode  "]
    assert "asserts kept" in lines["bytecode  "]
    assert " os, posixpath, " in lines["frozen    "]


# Issue 11: the DNS image's closure (everything but the interpreter) at most 1.5 MB stored,
# the whole self-contained image at most 8 MB.
CLOSURE_BUDGET = 1_500_000
IMAGE_BUDGET = 8_000_000


@pytest.mark.skipif(strip_tool() is None, reason="no strip (binutils): shared objects unstripped")
def test_the_dns_image_closure_stays_under_budget(
        dns_builds: tuple[Path, Path, list[str]]) -> None:
    from fata.image.inspection import inspect

    path = dns_builds[0]
    info = inspect(path)
    manifest = info["manifest"]
    interpreter = {e["path"] for e in manifest["files"] if e["kind"] == "interpreter"}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    closure_stored = sum(i.compress_size for i in infos if i.filename not in interpreter)
    assert info["closure_stored_bytes"] == closure_stored
    assert closure_stored <= CLOSURE_BUDGET, f"closure {closure_stored:,} bytes stored"
    # stricter: the file without the interpreter's stored bytes, zip headers included
    interp_stored = sum(i.compress_size for i in infos if i.filename in interpreter)
    assert path.stat().st_size - interp_stored <= CLOSURE_BUDGET
    if manifest.get("interpreter"):
        assert path.stat().st_size <= IMAGE_BUDGET, f"image {path.stat().st_size:,} bytes"


def _strings(code: types.CodeType) -> set[str]:
    found = {c for c in code.co_consts if isinstance(c, str)}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _strings(const)
    return found


def test_the_dns_image_bytecode_keeps_only_the_docstrings_code_reads(
        dns_builds: tuple[Path, Path, list[str]]) -> None:
    import marshal

    with zipfile.ZipFile(dns_builds[0]) as archive:
        names = set(archive.namelist())
        boot = marshal.loads(archive.read("lib/python3.11/fata/runtime/boot.pyc")[16:])
        dns_name = marshal.loads(archive.read("lib/python3.11/dns/name.pyc")[16:])
    # no file of a frozen module; the runtime's docstrings gone; dnspython's messages kept
    assert not {"lib/python3.11/os.pyc", "lib/python3.11/codecs.pyc",
                "lib/python3.11/importlib/_bootstrap_external.pyc"} & names
    import ast

    import fata.runtime.boot

    tree = ast.parse(Path(fata.runtime.boot.__file__).read_text())
    docstrings = {ast.get_docstring(n, clean=False) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                    ast.AsyncFunctionDef))} - {None}
    assert len(docstrings) > 3 and not docstrings & _strings(boot)
    strings = _strings(dns_name)
    assert "A DNS label is > 63 octets long." in strings
    assert not any(s.startswith("Convert text into a :py:class:`dns.name.Name` object.")
                   for s in strings)
    section = manifest_of(dns_builds[0])["bytecode"]
    assert section["docstrings"] == "stripped" and section["asserts"] == "kept"
    assert list(section["class_docstrings_kept"]) == ["dns"]


def _runtime(left_out: dict) -> types.ModuleType:
    module = types.ModuleType(leftout.MODULE_NAME)
    source = leftout.runtime_source(left_out).decode()
    # Run it without install(): the test process's own import system stays as it is.
    exec(compile(source.replace("\ninstall()\n", "\n"), "<leftout>", "exec"), module.__dict__)
    return module


LEFT = {
    "tarfile": {"why": "imported only inside functions the appliance is not known to call",
                "importers": "shutil", "stand_in": False},
    "importlib.metadata": {"why": "imported at module level but used only inside functions "
                                  "the appliance is not known to call",
                           "importers": "dns._features", "stand_in": True},
}


def test_the_finder_names_the_module_and_how_to_include_it() -> None:
    runtime = _runtime(LEFT)
    finder = runtime.LeftOutFinder
    assert finder.find_spec("json") is None and finder.find_spec("tarfilex") is None
    for name in ("tarfile", "tarfile.sub"):
        with pytest.raises(ModuleNotFoundError) as info:
            finder.find_spec(name)
        text = str(info.value)
        assert info.value.name == name
        assert "left out 'tarfile'" in text and "(shutil)" in text
        assert "include=['tarfile']" in text and "config.py" in text


def test_a_deferred_module_gets_a_stand_in_that_fails_on_use() -> None:
    import importlib.util

    runtime = _runtime(LEFT)
    spec = runtime.LeftOutFinder.find_spec("importlib.metadata")
    assert spec is not None and spec.submodule_search_locations == []
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not hasattr(module, "__all__")  # the import system's probes see nothing
    with pytest.raises(ModuleNotFoundError) as info:
        module.version("dnspython")
    assert "left out 'importlib.metadata'" in str(info.value)
    assert "used: importlib.metadata.version" in str(info.value)


def test_the_main_imports_the_finder_right_after_the_seal() -> None:
    from fata.image.mainmodule import _TEMPLATE

    template = _TEMPLATE.encode() if isinstance(_TEMPLATE, str) else _TEMPLATE
    assert b"ROOT = _seal()\n" + leftout.HOOK.encode() + b"\n" in template
    assert leftout.require_hook(template) == template
    with pytest.raises(image.ImageError, match="does not import the left-out finder"):
        leftout.require_hook(b"import sys\nROOT = _seal()\n")


APP_CONFIG = '''\
from fata.config import Appliance, arg, console

appliance = Appliance(
    name="leftout", version="1", entry="fata_leftout_test.unikernel:start",
    devices={"console": console()},
    args=[arg("module", default="", help="a module to import")],
)
'''

APP_UNIKERNEL = '''\
import importlib
import shutil  # its archive functions import tarfile, only inside them


async def start(console, args):
    console.info(f"terminal {shutil.get_terminal_size().columns > 0}")
    if args.module:
        importlib.import_module(args.module)
'''


def test_importing_a_left_out_module_in_a_running_image_says_why(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "app", {
        "config.py": APP_CONFIG,
        "fata_leftout_test/__init__.py": "",
        "fata_leftout_test/unikernel.py": APP_UNIKERNEL,
    })
    path = image.build(root, {}, tmp_path / "out", log=lambda *a: None)
    assert "tarfile" in manifest_of(path)["left_out"]
    ok = fata_cli("run", str(path))
    assert ok.returncode == 0, ok.stderr
    failed = fata_cli("run", str(path), "--", "--module", "tarfile")
    assert failed.returncode != 0
    assert "module 'tarfile' is not in this image: `fata build` left out 'tarfile'" in failed.stderr
    assert "include=['tarfile']" in failed.stderr
    # shutil only probes for zlib: left out, and importing it says so
    probed = fata_cli("run", str(path), "--", "--module", "zlib")
    assert probed.returncode != 0
    assert "left out 'zlib'" in probed.stderr
    assert "imported only to test whether it exists" in probed.stderr
    assert "include=['zlib']" in probed.stderr
    # a frozen module is no member but imports: the interpreter has it
    assert "lib/python3.11/pathlib.pyc" in {e["path"] for e in manifest_of(path)["files"]}
    assert "os" in manifest_of(path)["frozen"]
    frozen = fata_cli("run", str(path), "--", "--module", "runpy")  # frozen, not reached
    assert frozen.returncode == 0, frozen.stderr
