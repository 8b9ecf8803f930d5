"""The closure of modules an appliance reaches, found without importing anything.

``fata build`` puts into an image exactly the modules this walk finds, starting from the
generated main (which imports the runtime, the platform modules of the chosen keys and the
appliance's entry module).  The walk reads every module's syntax tree and follows each
``import``/``from ... import`` (including those inside functions, since they can run, but
not lazy imports of development tools, ``LAZY_EXCLUDED``, nor the few self-test imports
in ``LAZY_EXCLUDED_FROM``), the literal
``importlib.import_module("x")``/``__import__("x")`` calls, and nothing under
``if TYPE_CHECKING:`` or ``if __name__ == "__main__":`` (which never run in an image).
What a configuration reaches only by computed names comes through its ``include=[...]``
(whole packages), and what compiled extension modules import from C is listed in
``HIDDEN_IMPORTS`` or read from the Cython sources shipped beside them.

Nothing is imported: finding a module is a directory lookup (``importlib``'s own
``FileFinder``), so building never runs appliance or third-party code.
"""

from __future__ import annotations

import ast
import hashlib
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

from fata.image.errors import ImageError
from fata.image.paths import cache_home

# What compiled modules import from C, which no syntax tree shows.  Keys are modules; when
# one is in the closure, so are its values (modules, or packages whole when ending in ".*").
HIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    "time": ("_strptime",),
    "_datetime": ("_strptime", "time"),
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

# What the interpreter itself imports while starting and what the image's main needs
# besides its imports.  Codecs are looked up by name at run time: images carry the Unicode
# and ASCII-family ones (images run in UTF-8 mode, so start-up needs no other); an appliance
# that decodes a legacy charset names it in include=[...] (e.g. "encodings.cp1252").
INTERPRETER_MODULES: tuple[str, ...] = (
    "encodings", "encodings.aliases", "encodings.utf_8", "encodings.utf_8_sig",
    "encodings.utf_16", "encodings.utf_16_le", "encodings.utf_16_be", "encodings.utf_32",
    "encodings.utf_32_le", "encodings.utf_32_be", "encodings.ascii", "encodings.latin_1",
    "encodings.idna", "encodings.punycode", "encodings.raw_unicode_escape",
    "encodings.unicode_escape", "encodings.charmap", "encodings.base64_codec",
    "encodings.hex_codec", "codecs", "io", "abc", "os", "stat", "posixpath", "genericpath",
    "_collections_abc", "_sitebuiltins", "zipimport", "importlib", "importlib._bootstrap",
    "importlib._bootstrap_external", "importlib._abc", "importlib.machinery", "importlib.util",
    "linecache", "traceback",
)

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

# Lazy imports not followed from one importer only, each for a reason this specific; an
# appliance that uses one of these modules itself still gets it through its own import.
# - random: only `_test_generator`, a self-test, imports statistics, which brings decimal
#   and its 1.7 MB `_decimal` (0.8 MB of every image).
# - warnings: imports tracemalloc to show where a ResourceWarning's object was allocated,
#   inside `except Exception` that carries on without it; tracemalloc brings pickle.
# - logging: imports pickle only to raise PicklingError when a logger is pickled (without
#   pickle in the image nothing can be pickled anyway).
LAZY_EXCLUDED_FROM: dict[str, frozenset[str]] = {
    "random": frozenset({"statistics"}),
    "warnings": frozenset({"tracemalloc"}),
    "logging": frozenset({"pickle"}),
}

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


@dataclass
class Closure:
    """The result of a walk: modules by name, and the names that could not be found."""

    modules: dict[str, Module] = field(default_factory=dict)
    missing: dict[str, set[str]] = field(default_factory=dict)  # name -> importers
    reasons: dict[str, str] = field(default_factory=dict)  # name -> first importer (for `why`)


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
            return Module(name, path, kind, bool(locs), origin, root, locs)
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
    """Collects the module names a module's syntax tree may import."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.required: list[str] = []  # modules named by `import x` / `from x import ...`
        self.maybe: list[str] = []  # `from x import y`: y may be a submodule
        self.lazy: list[str] = []  # imports inside functions: run only if the function does
        self._depth = 0

    def _add(self, name: str, maybe: bool = False) -> None:
        if self._depth:
            self.lazy.append(name)
        elif maybe:
            self.maybe.append(name)
        else:
            self.required.append(name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

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
        if _is_type_checking(node.test) or _is_main_guard(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

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


_scan_cache: dict[str, Scan] = {}


def scan_source(source: bytes, module: str, is_package: bool, filename: str) -> Scan:
    """The imports of a module's source; memoised by content in memory and on disk."""
    key = hashlib.sha256(b"%s\0%d\0%s" % (module.encode(), is_package, source)).hexdigest()
    cached = _scan_cache.get(key)
    if cached is not None:
        return cached
    cache_file = cache_home() / "scan" / key[:2] / f"{key}.json"
    try:
        doc = json.loads(cache_file.read_bytes())
        result = Scan(tuple(doc["required"]), tuple(doc["maybe"]), tuple(doc["lazy"]))
    except (OSError, ValueError, KeyError, TypeError):
        result = None
    if result is None:
        try:
            tree = ast.parse(source, filename)
        except (SyntaxError, ValueError) as exc:
            raise ImageError(f"{filename}: cannot parse: {exc}") from None
        scanner = ImportScanner(module, is_package)
        scanner.visit(tree)
        result = Scan(tuple(scanner.required), tuple(scanner.maybe), tuple(scanner.lazy))
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f".{key}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"required": result.required, "maybe": result.maybe,
                                       "lazy": result.lazy}))
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


def _push_scan(push, scan: Scan, importer: str) -> None:
    push(scan.required, importer, True)
    push(scan.maybe, importer, False)
    dead = LAZY_EXCLUDED_FROM.get(importer, frozenset())
    push([n for n in scan.lazy if not _lazy_excluded(n) and n.split(".", 1)[0] not in dead],
         importer, False)


def _cython_imports(module: Module) -> list[str]:
    """Python-level imports written in the Cython sources shipped beside an extension."""
    if module.path is None:
        return []
    package_dir = module.path.parent
    found: list[str] = []
    for source in sorted([*package_dir.rglob("*.pyx"), *package_dir.rglob("*.pxi")]):
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


def _visit(index: ModuleIndex, closure: Closure, name: str, push) -> bool:
    """Add one module and queue what it imports; False when it does not exist."""
    if index.is_builtin(name):
        push(HIDDEN_IMPORTS.get(name, ()), name, False)
        return True
    module = index.find(name)
    if module is None:
        return False
    closure.modules[name] = module
    push(HIDDEN_IMPORTS.get(name, ()), name, False)
    if module.kind == "source" and module.path is not None:
        source = module.path.read_bytes()
        _push_scan(push, scan_source(source, name, module.is_package, str(module.path)), name)
    elif module.kind == "extension" and module.origin == "third-party":
        push(_cython_imports(module), name, False)
    return True


def compute(
    index: ModuleIndex,
    roots: list[str],
    main_source: bytes | None = None,
    main_name: str = "__fata_main__",
) -> Closure:
    """Walk from ``roots`` (module names; ``pkg.*`` means the package whole) and from the
    source of the image's main; return every module reached."""
    closure = Closure()
    queue: list[tuple[str, str, bool]] = []  # (name, importer, required)

    def push_whole(pattern: str, importer: str) -> None:
        package = pattern[:-2]
        queue.append((package, importer, True))
        module = index.find(package)
        if module is not None and module.is_package:
            queue.extend((sub, importer, False) for sub in index.submodules(module))

    def push(names: tuple[str, ...] | list[str], importer: str, required: bool) -> None:
        for name in names:
            if name.endswith(".*"):
                push_whole(name, importer)
            else:
                queue.append((name, importer, required))

    push(roots, "<image>", True)
    if main_source is not None:
        _push_scan(push, scan_source(main_source, main_name, False, main_name), main_name)

    seen: set[str] = set()
    while queue:
        name, importer, required = queue.pop()
        parts = name.split(".")
        # `import a.b.c` runs a, a.b and a.b.c, in that order.
        for depth in range(1, len(parts) + 1):
            current = ".".join(parts[:depth])
            if current in seen:
                if current not in closure.modules and not index.is_builtin(current):
                    break  # known to be absent: nothing below it exists either
                continue
            seen.add(current)
            closure.reasons[current] = importer
            if not _visit(index, closure, current, push):
                if required:
                    closure.missing.setdefault(name, set()).add(importer)
                break
    return closure
