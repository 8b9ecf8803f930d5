"""The closure of modules an appliance reaches, found without importing anything.

``fata build`` puts into an image the modules this walk finds, starting from the generated
main (which imports the runtime, the platform modules of the chosen keys and the
appliance's entry module).  The walk reads every module's syntax tree and sorts each
``import``/``from ... import`` (and literal ``importlib.import_module("x")`` /
``__import__("x")``) by *when it can run*:

- **eager**: at module level (module and class bodies), outside any ``try`` that catches
  ``ImportError``: it runs whenever its module is imported, so it is always followed;
- **deferred**: an eager ``import x`` (or ``import x as y``) whose bound name is read only
  inside function bodies - not in module or class bodies, decorators, default values or
  annotations: the statement runs, but the module is *used* only if such a function is
  called (dnspython's ``_features`` imports ``importlib.metadata``, which brings email,
  zipfile and csv, to call it inside one function);
- **dead**: under ``if TYPE_CHECKING:``, ``if __name__ == "__main__":`` or a test of the
  platform that is false where the image runs (``sys.platform == "win32"``,
  ``os.name == "nt"``, ``"nt" in sys.builtin_module_names`` and module-level names bound to
  such tests, like subprocess's ``_mswindows``), or in the handler of a ``try`` that
  only imports what is compiled into the interpreter and so cannot fail (threading's
  ``from _thread import _local``, whose fallback is ``_threading_local``): it never runs,
  so it is never followed;
- **guarded**: inside ``try:`` whose handler catches ``ImportError`` (or ``Exception``):
  the importer was written to carry on without the module (the handler's own imports, the
  fallback, are eager); *probed* when the importer deletes the name right away and only
  records that the import worked (shutil's ``import zlib; del zlib``);
- **lazy**: inside a function: it runs only if that function is called.

A module the interpreter has *frozen* (compiled into libpython: ``os``, ``codecs``, ``abc``,
``io``, ``importlib.util``, ``zipimport``..., and importlib's ``_bootstrap`` modules, which
are the frozen import system under another name, ``FROZEN_ALIASES``) is walked like any
other, its imports followed, but marked ``frozen``: the image's interpreter imports its own
frozen copy and never the file, so the file is not a member (``fata inspect`` lists them).

Why this method, rather than following every import: most of what the stdlib drags in is
reached through lazy, deferred and guarded imports of code an appliance never calls
(shutil's archive functions import tarfile, zipfile, lzma, bz2; asyncio's TLS transport
guards ``import ssl``).  A static call graph of Python cannot be computed soundly, but
whether an import statement runs at import time, and whether its name is read then, can
be seen in the syntax tree.  So the walk follows every kind of import written by the
appliance, by Fata and in the packages the configuration's ``include=[...]`` names (their
authors put an import in a function on purpose, and their own tests run it).  In the
stdlib and third-party packages it follows eager imports, deferred and guarded imports
of compiled modules (C accelerators such as ``_json``, and primitives such as
``binascii``: they import nothing to prune, and leaving them out saves only their own
bytes; but not a compiled module only probed for), and the lazy or deferred imports
listed in ``LAZY_FOLLOWED``, which the runtime's own paths call.  Everything else is *left
out*: ``Closure.left_out`` says which module, by whom and how it was imported; ``fata
build`` prints a summary and records each one in the manifest.  An appliance that does
call such a function names the module in ``include=[...]``.  A module one importer defers
and another guards goes in: the first needs its import to succeed, the second to fail.

What is left out is proven by running, not assumed: the image's import system is sealed
to its manifest, so a left-out module fails loudly at run time (``fata.image.leftout``
names it and ``include=``): importing a lazy one raises; a deferred one imports as a
stand-in whose first use raises; a guarded one raises ``ModuleNotFoundError`` and its
importer takes its designed fallback, as on a Python built without it.  The DNS
appliance's tests run its built images (``tests/dns``); each ``LAZY_FOLLOWED`` entry is
there because they failed, naming the module, without it.  Left-out paths those tests do
not run (dnspython's TSIG signing needs ``hmac``, a zone with UTF-8 rather than ``xn--``
names ``encodings.idna``) fail with that message until the configuration includes the
module.  One pattern the walk cannot see: another module reading a deferred module
through its importer (``from importer import x`` at module level) gets the stand-in.

Checked against a trace: the DNS image started with ``-X importtime`` and queried imports
every module this walk keeps as eager (argparse, shutil, locale, inspect, ast, logging,
subprocess, urllib.parse...: each is imported at module level by code that runs, so none
can be left out by any method short of changing that code); the members it never imports
are dnspython's record types (``include=``, loaded by type name), datetime (their RRSIG
times), the codecs of ``INTERPRETER_MODULES`` (looked up by name), and the executor's
queue (``LAZY_FOLLOWED``: a path that run did not take).

What a configuration reaches only by computed names comes through its ``include=[...]``
(whole packages), and what compiled extension modules import from C is listed in
``HIDDEN_IMPORTS`` or read from the Cython sources shipped beside them.

Nothing is imported but the interpreter's own built-in modules, to see which names they
define: finding a module is a directory lookup (``importlib``'s own ``FileFinder``), so
building never runs appliance, third-party or stdlib Python code.
"""

from __future__ import annotations

import _imp
import ast
import hashlib
import importlib
import json
import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    SourceFileLoader,
    SourcelessFileLoader,
)
from pathlib import Path
from typing import Any

from fata.image.errors import ImageError
from fata.image.paths import cache_home

# What compiled modules import from C, which no syntax tree shows.  Keys are modules; when
# one is in the closure, so are its values (modules, or packages whole when ending in ".*").
HIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    "_datetime": ("time",),
    "_pickle": ("copyreg", "_compat_pickle"),
    "_decimal": ("collections", "numbers", "contextvars"),
    "_elementtree": ("xml.etree.ElementPath", "copy", "pyexpat"),
    "_asyncio": ("asyncio.events", "asyncio.base_futures", "asyncio.exceptions",
                 "asyncio.base_tasks", "asyncio.coroutines"),
    "_ssl": ("_socket",),
    "_json": ("json.decoder",),
    "_ctypes": ("ctypes",),
    # cryptography's Rust extension imports its Python half lazily, by name.
    "cryptography.hazmat.bindings._rust": ("cryptography.*", "_cffi_backend"),
}

# What C code imports only inside one function (time.strptime and datetime.strptime import
# _strptime, which brings datetime, calendar and locale): lazy imports, as in Python.
HIDDEN_LAZY_IMPORTS: dict[str, tuple[str, ...]] = {
    "time": ("_strptime",),
    "_datetime": ("_strptime",),
}

# Lazy and deferred imports of the stdlib and third-party packages that are followed: the
# functions that use them are on paths images run (importer -> modules).  The DNS
# appliance's tests, run from its images, fail without each entry, with the left-out
# message (``leftout``) naming the module, except argparse's and traceback's textwrap
# (`--help` and printing an exception group, paths those tests do not take) and hashlib's
# _blake2 (without it, importing hashlib logs a traceback per blake2 constructor).
LAZY_FOLLOWED: dict[str, frozenset[str]] = {
    # every add_argument() builds a HelpFormatter, which asks shutil for the terminal width;
    # --help wraps the text with textwrap
    "argparse": frozenset({"shutil", "textwrap"}),
    # an exception group (asyncio.TaskGroup) is printed indented by textwrap
    "traceback": frozenset({"textwrap"}),
    # asyncio's default executor (run_in_executor, getaddrinfo) comes through the package's
    # module __getattr__
    "concurrent.futures": frozenset({"concurrent.futures.thread"}),
    "concurrent.futures.thread": frozenset({"queue"}),  # the pool's work queue
    # importing hashlib builds every always-supported constructor; blake2 is never OpenSSL's
    "hashlib": frozenset({"_blake2"}),
    # @dataclass gives a class without a docstring one from inspect.signature; asdict()
    # deep-copies values with copy (pyroute2's netlink core calls it on --net direct)
    "dataclasses": frozenset({"inspect", "copy"}),
    # argparse translates its messages: gettext looks the locale up
    "gettext": frozenset({"locale"}),
    # Path.glob (the baked data/*.zone) and Path.match
    "pathlib": frozenset({"fnmatch"}),
}

# What the interpreter itself imports while starting and what the image's main needs
# besides its imports.  Codecs are looked up by name at run time: images carry the Unicode
# and ASCII-family ones (images run in UTF-8 mode, so start-up needs no other); an appliance
# that decodes a legacy charset names it in include=[...] (e.g. "encodings.cp1252").
INTERPRETER_MODULES: tuple[str, ...] = (
    "encodings", "encodings.aliases", "encodings.utf_8", "encodings.utf_8_sig",
    "encodings.utf_16", "encodings.utf_16_le", "encodings.utf_16_be", "encodings.utf_32",
    "encodings.utf_32_le", "encodings.utf_32_be", "encodings.ascii", "encodings.latin_1",
    "encodings.punycode", "encodings.raw_unicode_escape",
    "encodings.unicode_escape", "encodings.charmap", "encodings.base64_codec",
    "encodings.hex_codec", "codecs", "io", "abc", "os", "stat", "posixpath", "genericpath",
    "_collections_abc", "_sitebuiltins", "zipimport", "importlib", "importlib._bootstrap",
    "importlib._bootstrap_external", "importlib._abc", "importlib.machinery", "importlib.util",
    "linecache", "traceback",
)

# importlib's ``__init__`` registers the interpreter's frozen import system under these
# names (``sys.modules``) before any submodule of it can be imported, so their files are
# never read either: module -> the frozen module it is.
FROZEN_ALIASES: dict[str, str] = {
    "importlib._bootstrap": "_frozen_importlib",
    "importlib._bootstrap_external": "_frozen_importlib_external",
}


def is_frozen(name: str) -> bool:
    """Whether the interpreter has ``name`` compiled in as a frozen module (``os``,
    ``codecs``, ``abc``, ``importlib.util``...), which it imports instead of any file.

    Asked of the Python running the build, which is the image's own (copied into it, or
    the only one a ``FATA_SELF_CONTAINED=0`` image runs on); images run it with
    ``-X frozen_modules=on`` (``run.py``, ``launch``), the default of an installed Python,
    and a build by a Python run with ``frozen_modules=off`` answers False: the files go in
    and are not read."""
    return _imp.is_frozen(FROZEN_ALIASES.get(name, name))


# Imports written inside functions are followed (the function may run), except into these
# development tools, which stdlib modules import lazily for their self-tests and debugging
# hooks (pickle's doctest, multiprocessing's test.support...) and which no appliance runs.
# An appliance that really uses one imports it at module level, or names it in include=[...].
LAZY_EXCLUDED: frozenset[str] = frozenset({
    "doctest", "pdb", "pydoc", "pydoc_data", "unittest", "test", "lib2to3", "distutils",
    "tkinter", "idlelib", "turtle", "turtledemo", "ensurepip", "venv", "webbrowser",
    "multiprocessing", "concurrent.futures.process", "xmlrpc", "importlib.metadata",
    "importlib.resources", "setuptools",
    "pip", "_pytest", "pytest", "hypothesis", "IPython", "sqlite3", "curses", "dbm",
})

_PYX_IMPORT = re.compile(
    r"^[ \t]*(?:import[ \t]+([\w., \t]+)|from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+([\w, \t]+))",
    re.MULTILINE,
)
_SKIP_DIRS = {"__pycache__", "tests", "test"}


@dataclass(frozen=True)
class Module:
    """One module of the closure and where its file is."""

    name: str
    path: Path | None  # the source, extension or bytecode file; None for a namespace package
    kind: str  # "source" | "extension" | "bytecode" | "namespace"
    is_package: bool
    origin: str  # "stdlib" | "fata" | "appliance" | "third-party"
    root: Path  # the search root it was found under (its import path entry)
    search_locations: tuple[str, ...] = ()
    # Compiled into the interpreter (frozen): the image's own interpreter runs that copy, so
    # the file is only read for its imports and is not a member (see ``FROZEN_ALIASES``).
    frozen: bool = False


@dataclass
class Closure:
    """The result of a walk: modules by name, and the names that could not be found."""

    modules: dict[str, Module] = field(default_factory=dict)
    missing: dict[str, set[str]] = field(default_factory=dict)  # name -> importers
    reasons: dict[str, str] = field(default_factory=dict)  # name -> first importer (for `why`)
    # Modules that exist but were reached only by imports not followed:
    # name -> {importer: "lazy" | "guarded" | "probed" | "deferred"}.
    left_out: dict[str, dict[str, str]] = field(default_factory=dict)

    def left_out_report(self) -> dict[str, dict[str, Any]]:
        """What was left out and why, by module: ``{"why": ..., "importers": ...}``, sorted
        (the shape the manifest records)."""
        report: dict[str, dict[str, Any]] = {}
        for name in sorted(self.left_out):
            importers = self.left_out[name]
            hows = sorted(set(importers.values()))
            why = " and ".join(_HOW[h] for h in hows)
            report[name] = {"why": why, "importers": ", ".join(sorted(importers)),
                            "stand_in": "deferred" in hows}
        return report


_HOW = {
    "deferred": "imported at module level but used only inside functions the appliance is "
                "not known to call",
    "lazy": "imported only inside functions the appliance is not known to call",
    "guarded": "imported only under try/except ImportError (the importer carries on "
               "without it)",
    "probed": "imported only to test whether it exists, under try/except ImportError (the "
              "importer records that it does not and carries on)",
}


class ModuleIndex:
    """Finds modules on a fixed list of search roots (never on ``sys.path``)."""

    def __init__(self, roots: list[tuple[Path, str]]) -> None:
        self.roots = [(Path(p), origin) for p, origin in roots if Path(p).is_dir()]
        self._finders: dict[str, FileFinder] = {}
        self._found: dict[str, Module | None] = {}

    def _finder(self, directory: str) -> FileFinder:
        finder = self._finders.get(directory)
        if finder is None:
            finder = FileFinder(
                directory,
                (ExtensionFileLoader, EXTENSION_SUFFIXES),
                (SourceFileLoader, SOURCE_SUFFIXES),
                (SourcelessFileLoader, BYTECODE_SUFFIXES),
            )
            self._finders[directory] = finder
        return finder

    def find(self, name: str) -> Module | None:
        """The module called ``name``, or None (built into the interpreter, or absent)."""
        if name in self._found:
            return self._found[name]
        result = self._find(name)
        self._found[name] = result
        return result

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is compiled into the interpreter (needs no file)."""
        return name in sys.builtin_module_names

    def _find(self, name: str) -> Module | None:
        if self.is_builtin(name):
            return None
        parent, _, _tail = name.rpartition(".")
        if parent:
            parent_module = self.find(parent)
            if parent_module is None or not parent_module.is_package:
                return None
            locations = [(Path(loc), parent_module.origin, parent_module.root)
                         for loc in parent_module.search_locations]
        else:
            # Fata may be installed among the third-party packages: it is still Fata.
            locations = [(root, "fata" if name == "fata" else origin, root)
                         for root, origin in self.roots]
        portions: list[str] = []
        first_portion: tuple[str, Path] | None = None
        for directory, origin, root in locations:
            spec = self._finder(str(directory)).find_spec(name)
            if spec is None:
                continue
            if spec.loader is None:  # a namespace-package portion: keep collecting
                portions.extend(spec.submodule_search_locations or ())
                if first_portion is None:
                    first_portion = (origin, root)
                continue
            path = Path(spec.origin or "")
            if isinstance(spec.loader, ExtensionFileLoader):
                kind = "extension"
            elif isinstance(spec.loader, SourcelessFileLoader):
                kind = "bytecode"
            else:
                kind = "source"
            locs = tuple(spec.submodule_search_locations or ())
            frozen = origin == "stdlib" and kind == "source" and is_frozen(name)
            return Module(name, path, kind, bool(locs), origin, root, locs, frozen)
        if portions and first_portion is not None:
            origin, root = first_portion
            return Module(name, None, "namespace", True, origin, root, tuple(portions))
        return None

    def submodules(self, package: Module) -> list[str]:
        """Every module under ``package`` (recursively), by listing its directories."""
        names: set[str] = set()
        for location in package.search_locations:
            base = Path(location)
            for path in sorted(base.rglob("*")):
                rel = path.relative_to(base)
                if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
                    continue
                if path.is_dir():
                    continue
                stem = _module_stem(path.name)
                if stem is None:
                    continue
                parts = list(rel.parent.parts)
                if not all(p.isidentifier() for p in parts):
                    continue
                if stem != "__init__":
                    parts.append(stem)
                names.add(".".join([package.name, *parts]))
        return sorted(names)


def _module_stem(filename: str) -> str | None:
    for suffix in (*EXTENSION_SUFFIXES, ".py"):
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            return stem if stem.isidentifier() else None
    return None


def default_roots(appliance_dir: Path, fata_root: Path) -> list[tuple[Path, str]]:
    """The search roots of a build, in the interpreter's own order (stdlib first)."""
    paths = sysconfig.get_paths()
    stdlib = Path(paths["stdlib"])
    roots: list[tuple[Path, str]] = [(stdlib, "stdlib"), (stdlib / "lib-dynload", "stdlib")]
    platstdlib = Path(paths["platstdlib"]) / "lib-dynload"
    if platstdlib != stdlib / "lib-dynload":
        roots.append((platstdlib, "stdlib"))
    roots.append((Path(appliance_dir), "appliance"))
    roots.append((Path(fata_root), "fata"))
    for key in ("purelib", "platlib"):
        site = Path(paths[key])
        if all(site != r for r, _ in roots):
            roots.append((site, "third-party"))
    return roots


class ImportScanner(ast.NodeVisitor):
    """Collects the module names a module's syntax tree may import, sorted by when the
    import can run (eager, guarded, lazy; dead branches are not visited)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.required: list[str] = []  # modules named by `import x` / `from x import ...`
        self.maybe: list[str] = []  # `from x import y`: y may be a submodule
        self.lazy: list[str] = []  # imports inside functions: run only if the function does
        self.guarded: list[str] = []  # module-level imports under try/except ImportError
        self._depth = 0
        self._guard = 0
        self._static: dict[str, bool] = {}  # module-level names bound to platform tests
        self._builtin_names: set[str] = set()  # names bound to sys.builtin_module_names
        self.fallible: set[str] = set()  # lazy imports under try/except ImportError
        # Guarded imports at module level, and how many of them only test that the module
        # exists: a module is a probe when all of them do (see `probes`).
        self._guarded_count: dict[str, int] = {}
        self._probe_count: dict[str, int] = {}
        # `import x` at module level, unguarded: (the name it binds, the module), and the
        # names read while the module is imported (module and class bodies, decorators,
        # default values, annotations) - see `deferred`.
        self._plain_imports: list[tuple[str, str]] = []
        self._import_time_names: set[str] = set()

    @property
    def probes(self) -> list[str]:
        """Modules every guarded import of which only tests that they exist (shutil's
        ``import zlib; del zlib``): the module itself never uses them."""
        return sorted(n for n, count in self._probe_count.items()
                      if count == self._guarded_count.get(n))

    @property
    def deferred(self) -> list[str]:
        """Module-level ``import x`` whose bound name is read only inside functions: the
        import statement runs, but the module is used only if one of those functions is
        called."""
        return [module for bound, module in self._plain_imports
                if bound not in self._import_time_names]

    def _add(self, name: str, maybe: bool = False) -> None:
        if self._depth:
            self.lazy.append(name)
            if self._guard:
                self.fallible.add(name)
        elif self._guard:
            self.guarded.append(name)
            self._guarded_count[name] = self._guarded_count.get(name, 0) + 1
        elif maybe:
            self.maybe.append(name)
        else:
            self.required.append(name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        # Decorators, defaults and annotations are evaluated where the function is defined.
        args = node.args
        at_definition: list[ast.AST] = [*args.defaults, *[d for d in args.kw_defaults if d]]
        if not isinstance(node, ast.Lambda):
            at_definition += node.decorator_list
            at_definition += [a.annotation for a in (*args.posonlyargs, *args.args,
                                                      *args.kwonlyargs, args.vararg, args.kwarg)
                              if a is not None and a.annotation is not None]
            if node.returns is not None:
                at_definition.append(node.returns)
        for child in at_definition:
            self.visit(child)
        self._depth += 1
        for child in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(child)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Name(self, node: ast.Name) -> None:
        if self._depth == 0:
            self._import_time_names.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self._import_time_names.update(node.names)  # rebinding from a function: be careful

    def visit_Try(self, node: ast.Try) -> None:
        guards = any(_catches_import_error(h.type) for h in node.handlers)
        self._guard += guards
        for child in node.body:
            self.visit(child)
        self._guard -= guards
        # A handler's imports are the fallback: they run when the guarded ones fail, which
        # the guarded ones cannot when they are compiled into the interpreter (threading's
        # `from _thread import _local`, abc's `from _abc import ...`): then they are dead.
        handlers = [] if guards and self._cannot_fail(node.body) else node.handlers
        if guards and self._depth == 0 and not self._guard:
            for name in _probes(node.body):
                self._probe_count[name] = self._probe_count.get(name, 0) + 1
        for child in [*handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def _cannot_fail(self, body: list[ast.stmt]) -> bool:
        """Whether ``body`` does nothing but import modules built into (or frozen in) the
        interpreter, and names they define: it cannot raise ImportError where the image
        runs, on the interpreter that builds it."""
        for stmt in body:
            if isinstance(stmt, ast.Import):
                if not all(_in_interpreter(a.name) for a in stmt.names):
                    return False
            elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                defined = _builtin_names(stmt.module)
                if defined is None or not all(a.name == "*" or a.name in defined
                                              for a in stmt.names):
                    return False
            else:
                return False
        return bool(body)

    visit_TryStar = visit_Try

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._depth == 0 and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if _is_sys_attr(node.value, "builtin_module_names"):
                self._builtin_names.add(target)
            value = self._truth(node.value)
            if value is not None:
                self._static[target] = value
            else:
                self._static.pop(target, None)
        self.generic_visit(node)

    def _resolve(self, level: int, name: str | None) -> str | None:
        """The absolute name of a (possibly relative) import; None beyond the top level."""
        if level == 0:
            return name
        parts = self.package.split(".") if self.package else []
        if level > len(parts):
            return None  # Python raises "attempted relative import beyond top-level package"
        base = parts[: len(parts) - (level - 1)]
        return ".".join([*base, name] if name else base)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self._depth == 0 and self._guard == 0:
                bound = alias.asname or alias.name.split(".", 1)[0]
                self._plain_imports.append((bound, alias.name))
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve(node.level, node.module)
        if base is None:
            return
        self._add(base)
        for alias in node.names:
            if alias.name != "*":
                self._add(f"{base}.{alias.name}", maybe=True)

    def visit_If(self, node: ast.If) -> None:
        value = self._truth(node.test)
        if value is None:
            self.generic_visit(node)
            return
        self.visit(node.test)  # the test itself runs (and reads its names)
        for child in node.body if value else node.orelse:
            self.visit(child)

    def _truth(self, test: ast.expr) -> bool | None:
        """The value of a test where the image runs, when it is knowable without running:
        TYPE_CHECKING, the ``__main__`` guard, and tests of the platform."""
        if _is_type_checking(test) or _is_main_guard(test):
            return False
        if isinstance(test, ast.Name):
            return self._static.get(test.id)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self._truth(test.operand)
            return None if inner is None else not inner
        if isinstance(test, ast.BoolOp):
            values = [self._truth(v) for v in test.values]
            decisive = isinstance(test.op, ast.Or)  # True decides an `or`, False an `and`
            if decisive in values:
                return decisive
            return None if None in values else not decisive
        if isinstance(test, ast.Call) and not test.keywords and len(test.args) == 1:
            func = test.func
            if (isinstance(func, ast.Attribute) and func.attr == "startswith"
                    and _is_sys_attr(func.value, "platform")):
                prefixes = _constant_strings(test.args[0])
                return None if prefixes is None else sys.platform.startswith(prefixes)
            return None
        if not isinstance(test, ast.Compare) or len(test.ops) != 1:
            return None
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, (ast.In, ast.NotIn)) and isinstance(left, ast.Constant):
            if _is_sys_attr(right, "builtin_module_names") or (
                    isinstance(right, ast.Name) and right.id in self._builtin_names):
                found = left.value in sys.builtin_module_names
                return found if isinstance(op, ast.In) else not found
            return None
        if _is_sys_attr(left, "platform"):
            actual = sys.platform
        elif isinstance(left, ast.Attribute) and left.attr == "name" and isinstance(
                left.value, ast.Name) and left.value.id in ("os", "_os"):
            actual = os.name
        else:
            return None
        options = _constant_strings(right)
        if options is None:
            return None
        if isinstance(op, (ast.Eq, ast.In)):
            return actual in options
        if isinstance(op, (ast.NotEq, ast.NotIn)):
            return actual not in options
        return None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                target = first.value
                if target.startswith("."):
                    level = len(target) - len(target.lstrip("."))
                    resolved = self._resolve(level, target.lstrip(".") or None)
                    if resolved:
                        self._add(resolved, maybe=True)
                elif target:
                    self._add(target, maybe=True)
        self.generic_visit(node)


def _probes(body: list[ast.stmt]) -> list[str]:
    """The modules a guarded ``body`` imports only to learn whether they exist: ``import
    x`` with the name deleted right after (shutil's ``import zlib; del zlib;
    _ZLIB_SUPPORTED = True``), so the importer itself never uses them."""
    deleted = {t.id for stmt in body if isinstance(stmt, ast.Delete)
               for t in stmt.targets if isinstance(t, ast.Name)}
    return [a.name for stmt in body if isinstance(stmt, ast.Import) for a in stmt.names
            if a.asname is None and "." not in a.name and a.name in deleted]


def _in_interpreter(name: str) -> bool:
    """Whether importing ``name`` needs no file: a built-in or frozen module."""
    return name in sys.builtin_module_names or is_frozen(name)


def _builtin_names(name: str) -> set[str] | None:
    """The names a built-in module defines (None for any other module).  Importing one
    runs only the interpreter's own C code, already linked into the build's process."""
    if name not in sys.builtin_module_names:
        return None
    return set(dir(importlib.import_module(name)))


def _catches_import_error(handler: ast.expr | None) -> bool:
    """Whether an ``except`` clause catches a failed import."""
    if handler is None:
        return True
    if isinstance(handler, ast.Tuple):
        return any(_catches_import_error(e) for e in handler.elts)
    name = handler.attr if isinstance(handler, ast.Attribute) else getattr(handler, "id", None)
    return name in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException")


def _is_sys_attr(node: ast.expr, attr: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == attr
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def _constant_strings(node: ast.expr) -> tuple[str, ...] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(values) == len(node.elts) and all(isinstance(v, str) for v in values):
            return tuple(values)
    return None


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


@dataclass(frozen=True)
class Scan:
    """What one module's source may import."""

    required: tuple[str, ...]  # at module level: runs whenever the module is imported
    maybe: tuple[str, ...]  # `from x import y` at module level: y may be a submodule
    lazy: tuple[str, ...]  # inside functions: runs only if the function is called
    guarded: tuple[str, ...] = ()  # under try/except ImportError: the importer copes without
    deferred: tuple[str, ...] = ()  # of `required`: bound names read only inside functions
    fallible: tuple[str, ...] = ()  # of `lazy`: under try/except ImportError
    probes: tuple[str, ...] = ()  # of `guarded`: imported only to test that they exist


_scan_cache: dict[str, Scan] = {}
# Bumped when the scanner's output changes; the platform and what is compiled into the
# interpreter (its built-in and frozen modules) are part of what it evaluates.
_SCAN_VERSION = "4-{}-{}-{}".format(sys.platform, os.name, hashlib.sha256(repr((
    sorted(sys.builtin_module_names),
    sorted(getattr(_imp, "_frozen_module_names", tuple)()),  # fewer: frozen_modules=off
)).encode()).hexdigest()[:16])


def scan_source(source: bytes, module: str, is_package: bool, filename: str) -> Scan:
    """The imports of a module's source; memoised by content in memory and on disk."""
    key = hashlib.sha256(b"%s\0%s\0%d\0%s" % (_SCAN_VERSION.encode(), module.encode(),
                                              is_package, source)).hexdigest()
    cached = _scan_cache.get(key)
    if cached is not None:
        return cached
    cache_file = cache_home() / "scan" / key[:2] / f"{key}.json"
    try:
        doc = json.loads(cache_file.read_bytes())
        result = Scan(tuple(doc["required"]), tuple(doc["maybe"]), tuple(doc["lazy"]),
                      tuple(doc["guarded"]), tuple(doc["deferred"]), tuple(doc["fallible"]),
                      tuple(doc["probes"]))
    except (OSError, ValueError, KeyError, TypeError):
        result = None
    if result is None:
        try:
            tree = ast.parse(source, filename)
        except (SyntaxError, ValueError) as exc:
            raise ImageError(f"{filename}: cannot parse: {exc}") from None
        scanner = ImportScanner(module, is_package)
        scanner.visit(tree)
        result = Scan(tuple(scanner.required), tuple(scanner.maybe), tuple(scanner.lazy),
                      tuple(scanner.guarded), tuple(dict.fromkeys(scanner.deferred)),
                      tuple(sorted(scanner.fallible)), tuple(scanner.probes))
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f".{key}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"required": result.required, "maybe": result.maybe,
                                       "lazy": result.lazy, "guarded": result.guarded,
                                       "deferred": result.deferred,
                                       "fallible": result.fallible,
                                       "probes": result.probes}))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    _scan_cache[key] = result
    return result


def _lazy_excluded(name: str) -> bool:
    top = name.split(".", 1)[0]
    return top in LAZY_EXCLUDED or any(
        name == p or name.startswith(p + ".") for p in LAZY_EXCLUDED if "." in p
    )


def _cython_imports(module: Module) -> list[str]:
    """Python-level imports written in the Cython sources shipped beside an extension."""
    if module.path is None:
        return []
    package_dir = module.path.parent
    if "." in module.name:  # in a package: the package's Cython sources
        sources = [*package_dir.rglob("*.pyx"), *package_dir.rglob("*.pxi")]
    else:  # a top-level module (brotli's _brotli): only its own, not all of site-packages'
        sources = [p for p in (package_dir / f"{module.name}.pyx",
                               package_dir / f"{module.name}.pxi") if p.is_file()]
    found: list[str] = []
    for source in sorted(sources):
        try:
            text = source.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for match in _PYX_IMPORT.finditer(text):
            plain, dots, base, names = match.groups()
            if plain:
                found.extend(p.split()[0] for p in plain.split(",") if p.split())
                continue
            if dots:  # relative to the extension's package
                parts = module.name.split(".")[: -len(dots)]
                base = ".".join([*parts, base] if base else parts)
            if not base:
                continue
            found.append(base)
            found.extend(f"{base}.{n.split()[0]}" for n in names.split(",") if n.split())
    return found


_LEAF_SOURCE_BYTES = 4096


class _Walk:
    """One walk of the closure: the queue of imports to follow and the ones held back."""

    def __init__(self, index: ModuleIndex, included: tuple[str, ...] = ()) -> None:
        self.index = index
        self.included = included
        self.closure = Closure()
        self.queue: list[tuple[str, str, bool]] = []  # (name, importer, required)
        self.held: dict[str, dict[str, str]] = {}  # name -> {importer: how}
        self.seen: set[str] = set()

    def push(self, names: tuple[str, ...] | list[str], importer: str, required: bool) -> None:
        for name in names:
            if name.endswith(".*"):
                package = name[:-2]
                self.queue.append((package, importer, True))
                module = self.index.find(package)
                if module is not None and module.is_package:
                    self.queue.extend((sub, importer, False)
                                      for sub in self.index.submodules(module))
            else:
                self.queue.append((name, importer, required))

    def hold(self, names: tuple[str, ...] | list[str], importer: str, how: str) -> None:
        for name in names:
            self.held.setdefault(name, {}).setdefault(importer, how)

    def push_scan(self, scan: Scan, importer: str, ours: bool) -> None:
        """Queue what a module imports, by the policy of the module docstring: all of it
        for the appliance's and Fata's own code, eager imports, guarded extension modules
        and ``LAZY_FOLLOWED`` for libraries; hold back the rest."""
        if ours:
            self.push(scan.required, importer, True)
            self.push(scan.maybe, importer, False)
            self.push(scan.guarded, importer, False)
            self.push([n for n in scan.lazy if not _lazy_excluded(n)], importer, False)
            return
        followed = LAZY_FOLLOWED.get(importer, frozenset())
        # A leaf imported at module level goes in even if used only in functions: it
        # imports nothing of its own to prune, and such primitives (binascii, array,
        # struct) are called from everywhere.
        deferred = [n for n in scan.deferred if n not in followed and not self._is_leaf(n)]
        self.push([n for n in scan.required if n not in deferred], importer, True)
        self.hold(deferred, importer, "deferred")
        self.push(scan.maybe, importer, False)
        # A compiled module probed for (zlib for shutil's archive formats) is not an
        # accelerator: the importer does not call it, only records that it exists.
        accelerators = [n for n in scan.guarded
                        if self._is_compiled(n) and n not in scan.probes]
        self.push(accelerators, importer, False)
        self.hold([n for n in scan.guarded if n not in accelerators and n in scan.probes],
                  importer, "probed")
        self.hold([n for n in scan.guarded if n not in accelerators and n not in scan.probes],
                  importer, "guarded")
        self.push([n for n in scan.lazy if n in followed], importer, False)
        for name in scan.lazy:
            if name not in followed:
                self.hold([name], importer, "guarded" if name in scan.fallible else "lazy")

    def _is_leaf(self, name: str) -> bool:
        """A compiled module, or a small source one (``_LEAF_SOURCE_BYTES``) whose eager
        imports are all compiled (struct, contextvars: ``from _x import *``)."""
        if self._is_compiled(name):
            return True
        module = self.index.find(name)
        if module is None or module.kind != "source" or module.path is None:
            return False
        source = module.path.read_bytes()
        if len(source) > _LEAF_SOURCE_BYTES:
            return False
        scan = scan_source(source, name, module.is_package, str(module.path))
        return all(self._is_compiled(n) for n in scan.required)

    def _is_compiled(self, name: str) -> bool:
        if self.index.is_builtin(name):
            return True
        module = self.index.find(name)
        return module is not None and module.kind == "extension"

    def visit(self, name: str) -> bool:
        """Add one module and queue what it imports; False when it does not exist."""
        index, closure = self.index, self.closure
        if index.is_builtin(name):
            self.push(HIDDEN_IMPORTS.get(name, ()), name, False)
            self.hold(HIDDEN_LAZY_IMPORTS.get(name, ()), name, "lazy")
            return True
        module = index.find(name)
        if module is None:
            return False
        closure.modules[name] = module
        self.push(HIDDEN_IMPORTS.get(name, ()), name, False)
        self.hold(HIDDEN_LAZY_IMPORTS.get(name, ()), name, "lazy")
        if module.kind == "source" and module.path is not None:
            source = module.path.read_bytes()
            scan = scan_source(source, name, module.is_package, str(module.path))
            ours = module.origin in ("appliance", "fata") or any(
                name == p or name.startswith(p + ".") for p in self.included)
            self.push_scan(scan, name, ours)
        elif module.kind == "extension" and module.origin == "third-party":
            self.push(_cython_imports(module), name, False)
        return True

    def run(self) -> Closure:
        while True:
            self._drain()
            self._settle()
            # A module that one importer imports for sure at module level (deferred: it
            # must then import, as a stand-in) and another guards (it must then fail, to
            # take the fallback) cannot be both: it goes in.
            conflicts = [name for name, importers in self.closure.left_out.items()
                         if "deferred" in importers.values()
                         and {"guarded", "probed"} & set(importers.values())]
            if not conflicts:
                return self.closure
            for name in conflicts:
                importer = sorted(self.closure.left_out[name])[0]
                self.queue.append((name, importer, True))
                for held in self.held.values():
                    held.pop(name, None)
                self.held.pop(name, None)
            self.closure.left_out.clear()

    def _drain(self) -> None:
        closure, index = self.closure, self.index
        while self.queue:
            name, importer, required = self.queue.pop()
            parts = name.split(".")
            # `import a.b.c` runs a, a.b and a.b.c, in that order.
            for depth in range(1, len(parts) + 1):
                current = ".".join(parts[:depth])
                if current in self.seen:
                    if current not in closure.modules and not index.is_builtin(current):
                        break  # known to be absent: nothing below it exists either
                    continue
                self.seen.add(current)
                closure.reasons[current] = importer
                if not self.visit(current):
                    if required:
                        closure.missing.setdefault(name, set()).add(importer)
                    break

    def _settle(self) -> None:
        """Fill ``left_out`` from what was held back and is not in the closure."""
        closure, index = self.closure, self.index
        for name, importers in self.held.items():
            parts = name.split(".")
            # The first part of the name not in the closure is what the import would miss.
            for depth in range(1, len(parts) + 1):
                current = ".".join(parts[:depth])
                if current in closure.modules or index.is_builtin(current):
                    continue
                if index.find(current) is not None:
                    left = closure.left_out.setdefault(current, {})
                    for importer, how in importers.items():
                        left.setdefault(importer, how)
                break


def compute(
    index: ModuleIndex,
    roots: list[str],
    main_source: bytes | None = None,
    main_name: str = "__fata_main__",
    included: tuple[str, ...] = (),
) -> Closure:
    """Walk from ``roots`` (module names; ``pkg.*`` means the package whole) and from the
    source of the image's main; return every module reached and what was left out.

    ``included`` are the packages the configuration's ``include=[...]`` names: the
    appliance uses them by computed names, all of them, so their imports are followed as
    its own are."""
    walk = _Walk(index, included)
    walk.push(roots, "<image>", True)
    if main_source is not None:
        walk.push_scan(scan_source(main_source, main_name, False, main_name), main_name, True)
    return walk.run()
