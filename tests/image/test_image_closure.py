"""The closure walk: which imports it follows, and which it must not."""

from __future__ import annotations

import textwrap
from pathlib import Path

from fata.image import closure
from fata.image.paths import project_root
from fata.image.recipes import load_recipes


def scan(source: str, module: str = "pkg.mod", is_package: bool = False) -> closure.Scan:
    return closure.scan_source(textwrap.dedent(source).encode(), module, is_package, "<test>")


def test_absolute_relative_and_from_imports() -> None:
    result = scan("""
        import a.b.c, d as e
        from f import g
        from . import sibling
        from .. import up
        from .sub import thing
        from ...too.far import nothing
    """, module="pkg.sub.mod")
    assert result.required == ("a.b.c", "d", "f", "pkg.sub", "pkg", "pkg.sub.sub")
    assert set(result.maybe) == {"f.g", "pkg.sub.sibling", "pkg.up", "pkg.sub.sub.thing"}


def test_relative_import_in_a_package_init() -> None:
    assert scan("from . import x", module="pkg", is_package=True).maybe == ("pkg.x",)


def test_type_checking_and_main_blocks_are_not_followed() -> None:
    result = scan("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import heavy
        else:
            import light
        if typing.TYPE_CHECKING:
            import heavier
        if __name__ == "__main__":
            import cli_only
    """)
    assert "heavy" not in result.required and "heavier" not in result.required
    assert "cli_only" not in result.required and "light" in result.required


def test_function_level_imports_are_lazy_and_dev_tools_are_pruned() -> None:
    result = scan("""
        import importlib
        def f():
            import json
            import doctest
            importlib.import_module("xml.dom")
        mod = importlib.import_module("csv")
        lam = lambda: __import__("zlib")
    """)
    assert set(result.lazy) == {"json", "doctest", "xml.dom", "zlib"}
    assert "csv" in result.maybe
    assert closure._lazy_excluded("doctest") and closure._lazy_excluded("unittest.mock")
    assert closure._lazy_excluded("importlib.metadata._meta")
    assert not closure._lazy_excluded("json") and not closure._lazy_excluded("importlib.util")


def test_cython_sources_declare_their_imports(tmp_path: Path) -> None:
    package = tmp_path / "cy"
    package.mkdir()
    (package / "__init__.py").write_text("from .fast import f\n")
    (package / "fast.pyx").write_text(textwrap.dedent("""
        from libc.stdint cimport uint8_t
        cimport cython
        import asyncio, collections.abc
        from . import _helper
        from .sub import thing as other
    """))
    (package / "_helper.py").write_text("")
    (package / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    index = closure.ModuleIndex([(tmp_path, "third-party")])
    module = index.find("cy.fast")
    assert module is not None and module.kind == "extension"
    found = closure._cython_imports(module)
    assert {"asyncio", "collections.abc", "cy", "cy._helper", "cy.sub", "cy.sub.thing"} <= set(
        found)
    assert not any("libc" in f or f == "cython" for f in found)


def test_walk_follows_parents_and_records_missing(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text("import app.util\nimport not_anywhere\n")
    (tmp_path / "app" / "util.py").write_text("from .deep import x\n")
    (tmp_path / "app" / "deep.py").write_text("x = 1\n")
    (tmp_path / "unused.py").write_text("")
    index = closure.ModuleIndex([(tmp_path, "appliance")])
    result = closure.compute(index, ["app.main"])
    assert set(result.modules) == {"app", "app.main", "app.util", "app.deep"}
    assert result.missing == {"not_anywhere": {"app.main"}}


def test_a_library_lazy_import_is_left_out_and_reported(tmp_path: Path) -> None:
    """random's `_test_generator` imports statistics (and so decimal, 1.7 MB); no appliance
    runs it: it is left out, and said so.  The appliance's own lazy import of statistics
    (its author put it there to run) brings it in."""
    stdlib, app = tmp_path / "stdlib", tmp_path / "app"
    stdlib.mkdir()
    app.mkdir()
    (stdlib / "random.py").write_text("def _test_generator():\n    from statistics import stdev\n")
    (stdlib / "statistics.py").write_text("import decimal\n_D = decimal.Decimal\n")
    (stdlib / "decimal.py").write_text("")
    (app / "user.py").write_text("def mean():\n    import statistics\n")
    index = closure.ModuleIndex([(stdlib, "stdlib"), (app, "appliance")])
    alone = closure.compute(index, ["random"])
    assert set(alone.modules) == {"random"}
    assert alone.left_out == {"statistics": {"random": "lazy"}}
    report = alone.left_out_report()["statistics"]
    assert report["importers"] == "random" and "inside functions" in report["why"]
    with_user = closure.compute(index, ["random", "user"])
    assert set(with_user.modules) == {"random", "user", "statistics", "decimal"}
    assert with_user.left_out == {}


def test_guarded_imports_keep_accelerators_and_leave_out_the_rest(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text(textwrap.dedent("""
        try:
            import _fast
        except ImportError:
            _fast = None
        try:
            import optional_feature
        except ImportError:
            optional_feature = None
        else:
            import needed_with_it
            needed_with_it.setup()
    """))
    (tmp_path / "_fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "optional_feature.py").write_text("")
    (tmp_path / "needed_with_it.py").write_text("")
    index = closure.ModuleIndex([(tmp_path, "stdlib")])
    result = closure.compute(index, ["lib"])
    assert set(result.modules) == {"lib", "_fast", "needed_with_it"}
    assert result.left_out == {"optional_feature": {"lib": "guarded"}}


def test_platform_tests_are_evaluated_for_where_the_image_runs() -> None:
    result = scan("""
        import sys, os
        _mswindows = (sys.platform == "win32")
        _names = sys.builtin_module_names
        if _mswindows:
            import _winapi
        else:
            import _posixsubprocess
        if sys.platform.startswith("win") or os.name == "nt":
            import nt_only
        if sys.platform != "win32" and "posix" in _names:
            import posix_only
        if "nt" in sys.builtin_module_names:
            import ntpath
        if some_runtime_flag:
            import unknown
    """)
    assert "_winapi" not in result.required and "nt_only" not in result.required
    assert "ntpath" not in result.required
    assert {"_posixsubprocess", "posix_only", "unknown"} <= set(result.required)


def test_a_module_level_import_used_only_in_functions_is_deferred(tmp_path: Path) -> None:
    """dns._features imports importlib.metadata at module level and calls it only inside a
    function: the import must succeed (a stand-in at run time), the module can stay out."""
    result = scan("""
        import importlib.metadata
        import used_at_import
        import in_a_default
        import decorates
        import only_inside as alias
        X = used_at_import.VALUE
        @decorates.it
        def f(arg=in_a_default.DEFAULT):
            return importlib.metadata.version("x"), alias.thing()
    """)
    assert set(result.deferred) == {"importlib.metadata", "only_inside"}
    (tmp_path / "lib.py").write_text("import heavy\ndef f():\n    return heavy.x\n")
    (tmp_path / "heavy.py").write_text("import heavier\nY = heavier.y\n")
    (tmp_path / "heavier.py").write_text("")
    index = closure.ModuleIndex([(tmp_path, "third-party")])
    found = closure.compute(index, ["lib"])
    assert set(found.modules) == {"lib"}
    assert found.left_out == {"heavy": {"lib": "deferred"}}
    assert found.left_out_report()["heavy"]["stand_in"] is True


def test_a_deferred_leaf_goes_in(tmp_path: Path) -> None:
    """struct is `from _struct import *`: leaving it out would save only its own bytes."""
    (tmp_path / "lib.py").write_text("import wrapper\nimport _c\ndef f():\n    return wrapper, _c\n")
    (tmp_path / "wrapper.py").write_text("from _c import *\n")
    (tmp_path / "_c.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    index = closure.ModuleIndex([(tmp_path, "stdlib")])
    found = closure.compute(index, ["lib"])
    assert set(found.modules) == {"lib", "wrapper", "_c"} and found.left_out == {}


def test_deferred_and_guarded_by_two_importers_goes_in(tmp_path: Path) -> None:
    """One importer needs the import to succeed, the other to fail: it cannot be left out."""
    (tmp_path / "a.py").write_text("import opt\ndef f():\n    return opt.x\n")
    (tmp_path / "b.py").write_text("try:\n    import opt\nexcept ImportError:\n    opt = None\n")
    (tmp_path / "opt.py").write_text("")
    index = closure.ModuleIndex([(tmp_path, "stdlib")])
    found = closure.compute(index, ["a", "b"])
    assert "opt" in found.modules and found.left_out == {}


def test_imports_under_try_are_guarded_but_handlers_are_eager() -> None:
    result = scan("""
        try:
            from _speedups import thing
        except (ImportError, AttributeError):
            from slow import thing
        try:
            import not_guarded
        except KeyError:
            pass
    """)
    assert set(result.guarded) == {"_speedups", "_speedups.thing"}
    assert "slow" in result.required and "not_guarded" in result.required


def test_namespace_packages_and_whole_packages(tmp_path: Path) -> None:
    (tmp_path / "ns" / "inner").mkdir(parents=True)
    (tmp_path / "ns" / "inner" / "__init__.py").write_text("")
    (tmp_path / "ns" / "inner" / "a.py").write_text("")
    (tmp_path / "ns" / "inner" / "b.py").write_text("")
    (tmp_path / "ns" / "inner" / "__pycache__").mkdir()
    index = closure.ModuleIndex([(tmp_path, "third-party")])
    result = closure.compute(index, ["ns.inner.*"])
    assert set(result.modules) == {"ns", "ns.inner", "ns.inner.a", "ns.inner.b"}
    assert result.modules["ns"].kind == "namespace"


def test_published_recipes_name_real_appliances() -> None:
    root = project_root()
    assert root is not None
    recipes = load_recipes(root / "images" / "recipes.json")
    for name in ("dns", "www"):
        assert {r["keys"]["net"] for r in recipes if r["appliance"] == name} == {"socket", "direct"}
    for recipe in recipes:
        assert (root / "appliances" / recipe["appliance"]).is_dir()


def test_wheel_bundled_libraries_come_with_their_extension(tmp_path: Path) -> None:
    from fata.image.builder import bundled_libraries

    libs = tmp_path / "pkg.libs"
    libs.mkdir()
    (libs / "libfoo-1a2b.so.1").write_bytes(b"\x7fELF needs libbar-3c4d.so.2")
    (libs / "libbar-3c4d.so.2").write_bytes(b"\x7fELF")
    (libs / "libunused-5e6f.so").write_bytes(b"\x7fELF")
    ext = tmp_path / "pkg" / "_ext.so"
    ext.parent.mkdir()
    ext.write_bytes(b"\x7fELF ... libfoo-1a2b.so.1 ...")
    assert [p.name for p in bundled_libraries(ext, tmp_path)] == [
        "libbar-3c4d.so.2", "libfoo-1a2b.so.1"]


def test_fata_installed_among_third_party_packages_is_still_fata(tmp_path: Path) -> None:
    (tmp_path / "fata").mkdir()
    (tmp_path / "fata" / "__init__.py").write_text("import other\n")
    (tmp_path / "other.py").write_text("")
    index = closure.ModuleIndex([(tmp_path, "third-party")])
    result = closure.compute(index, ["fata"])
    assert result.modules["fata"].origin == "fata"
    assert result.modules["other"].origin == "third-party"


def test_frozen_modules_are_walked_but_marked_as_in_the_interpreter() -> None:
    """os, codecs, abc... run from the interpreter's frozen copies: their imports are
    followed, their files are not members (the builder skips ``frozen`` modules)."""
    roots = closure.default_roots(Path("/nonexistent"), Path(closure.__file__).parents[2])
    found = closure.compute(closure.ModuleIndex(roots), ["os", "codecs", "importlib.util"])
    for name in ("os", "posixpath", "genericpath", "_collections_abc", "abc", "codecs",
                 "importlib.util", "importlib._bootstrap", "importlib._bootstrap_external"):
        assert found.modules[name].frozen, name
    assert not found.modules["importlib"].frozen and closure.is_frozen("os")
    assert not closure.is_frozen("json") and not closure.is_frozen("importlib")


def test_a_try_that_cannot_fail_has_dead_handlers() -> None:
    result = scan("""
        try:
            from _thread import _local as local
        except ImportError:
            from _threading_local import local
        try:
            import _frozen_importlib as _bootstrap
        except ImportError:
            from . import _bootstrap
        try:
            from _thread import no_such_name
        except ImportError:
            import fallback_a
        try:
            import not_in_the_interpreter
        except ImportError:
            import fallback_b
        try:
            import sys
            VALUE = sys.maxsize
        except ImportError:
            import fallback_c
    """)
    everything = {*result.required, *result.maybe, *result.guarded}
    assert "_threading_local" not in everything and "pkg._bootstrap" not in everything
    assert {"fallback_a", "fallback_b", "fallback_c"} <= set(result.required)


def test_a_probed_module_is_left_out_even_if_compiled(tmp_path: Path) -> None:
    """shutil imports zlib only to learn whether gzip archives are possible: its archive
    functions are not run, so zlib is left out and shutil records "not supported"."""
    (tmp_path / "archiver.py").write_text(textwrap.dedent("""
        try:
            import _zfast
            del _zfast
            HAVE_Z = True
        except ImportError:
            HAVE_Z = False
        try:
            import _accel
        except ImportError:
            _accel = None
    """))
    (tmp_path / "_zfast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "_accel.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "user.py").write_text("import _zfast\n")
    index = closure.ModuleIndex([(tmp_path, "stdlib")])
    found = closure.compute(index, ["archiver"])
    assert set(found.modules) == {"archiver", "_accel"}
    assert found.left_out == {"_zfast": {"archiver": "probed"}}
    assert "test whether it exists" in found.left_out_report()["_zfast"]["why"]
    assert "_zfast" in closure.compute(index, ["archiver", "user"]).modules
    # probed once but imported to be used in another guarded import: not a probe
    both = scan("""
        try:
            import zlib
            del zlib
        except ImportError:
            pass
        try:
            import zlib
        except ImportError:
            zlib = None
        try:
            import bz2
            del bz2
        except ImportError:
            pass
    """)
    assert both.probes == ("bz2",) and set(both.guarded) == {"zlib", "bz2"}


def test_a_top_level_extension_reads_only_its_own_cython_source(tmp_path: Path) -> None:
    """brotli's ``_brotli`` sits at the top of site-packages: its Cython sources are not
    every ``.pyx`` there (numpy's, lxml's), which once put numpy in the www image."""
    (tmp_path / "_top.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "_top.pyx").write_text("import json\n")
    (tmp_path / "bigpkg").mkdir()
    (tmp_path / "bigpkg" / "__init__.py").write_text("")
    (tmp_path / "bigpkg" / "core.pyx").write_text("import heavy_dependency\n")
    (tmp_path / "_other.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    index = closure.ModuleIndex([(tmp_path, "third-party")])
    top, other = index.find("_top"), index.find("_other")
    assert top is not None and other is not None
    assert closure._cython_imports(top) == ["json"]
    assert closure._cython_imports(other) == []
