"""Deterministic, sourceless bytecode for images, compiled small and memoised by content.

Each module is compiled once per (source, file name, interpreter, compile policy) into an
*unchecked hash-based* pyc (PEP 552): its header holds a hash of the source, never a
timestamp, so the same source always gives the same bytes.  The file name recorded in the
code objects is the module's path inside the image (``fata/runtime/boot.py``), never a path
of the build machine, which keeps images byte-identical wherever they are built and
tracebacks readable.

Two things an appliance never uses are left out of the code objects, which makes the
closure's bytecode about 40% smaller stored (the DNS image: 0.45 MB for the columns, 0.25 MB
for the docstrings, of 2.1 MB):

- **Column positions** (PEP 657).  Since 3.11 every instruction carries its start and end
  line and column, so that a traceback can underline (``^^^^``) the failing expression;
  that is most of a 3.11 pyc.  :func:`drop_column_positions` rewrites each location table
  with lines only, exactly what ``python -X no_debug_ranges`` compiles (the tests compare
  the two): tracebacks keep every file and line number and lose only the underlining.
- **Docstrings** (:func:`strip_docstrings`): the first string statement of a module,
  class or function, removed from the syntax tree before it is compiled.  Not
  ``optimize=2``, which also removes ``assert`` statements and makes ``__debug__`` false:
  asserts are kept.  Code that *reads* a docstring behaves differently without it, so the
  closures of the published appliances were searched for ``__doc__`` and ``getdoc``; what
  matters is kept (:data:`DOCSTRINGS_KEPT`, and the class docstring of a ``@dataclass``,
  which ``dataclasses`` otherwise computes with ``inspect.signature`` as the class is
  created).  The other readers only copy or decorate a docstring (``functools.wraps``,
  ``property``, enum's default, email's policy documentation), which a missing one cannot
  break; argparse help comes from the configuration's ``arg(help=...)``, not docstrings.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import marshal
import os
from pathlib import Path
from types import CodeType

from fata.image.errors import ImageError
from fata.image.paths import cache_home

_MAGIC = importlib.util.MAGIC_NUMBER
_FLAGS_UNCHECKED_HASH = 0b01  # hash-based, check_source off
# Bumped whenever what compile_pyc makes from the same source changes (the cache key).
_POLICY = b"nodoc-nocolumns-1"

# Packages whose code reads class docstrings at run time: their classes keep them (module
# and function docstrings still go).  Package -> why.
DOCSTRINGS_KEPT: dict[str, str] = {
    "dns": "dnspython's exceptions take their message from their class docstring "
           "(dns.exception.DNSException: self.msg = self.__doc__), and the DNS appliance "
           "reports it (a bad name, a malformed zone line)",
}


def keeps_class_docstrings(module: str) -> bool:
    """Whether ``module`` is in a package of :data:`DOCSTRINGS_KEPT`."""
    return any(module == p or module.startswith(p + ".") for p in DOCSTRINGS_KEPT)


def pyc_bytes(source: bytes, display_name: str, *, class_docstrings: bool = False) -> bytes:
    """The pyc for ``source`` as it will appear in an image, from the cache when there.

    ``class_docstrings`` keeps every class's docstring (a package of
    :data:`DOCSTRINGS_KEPT`)."""
    key = hashlib.sha256(b"%s\0%s\0%d\0%s\0%s" % (
        _MAGIC, _POLICY, class_docstrings, display_name.encode(), source)).hexdigest()
    cache_file = cache_home() / "pyc" / key[:2] / f"{key}.pyc"
    try:
        data = cache_file.read_bytes()
    except OSError:
        data = None
    if data is not None and data[:4] == _MAGIC:
        return data
    data = compile_pyc(source, display_name, class_docstrings=class_docstrings)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{key}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache only costs time
    return data


def compile_pyc(source: bytes, display_name: str, *, class_docstrings: bool = False) -> bytes:
    """Compile ``source`` to an unchecked-hash pyc without docstrings (but for the classes
    ``class_docstrings`` keeps) or column positions, asserts kept (no cache)."""
    try:
        tree = compile(source, display_name, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        strip_docstrings(tree, class_docstrings=class_docstrings)
        code = compile(tree, display_name, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError) as exc:
        raise ImageError(f"{display_name}: cannot compile: {exc}") from None
    header = bytearray(_MAGIC)
    header += _FLAGS_UNCHECKED_HASH.to_bytes(4, "little")
    header += importlib.util.source_hash(source)
    return bytes(header) + marshal.dumps(drop_column_positions(code))


def _docstring(body: list[ast.stmt]) -> ast.Expr | None:
    """The docstring statement opening ``body`` (as the compiler finds it), or None."""
    first = body[0] if body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first
    return None


def _is_dataclass_decorator(node: ast.expr) -> bool:
    """``@dataclass``, ``@dataclasses.dataclass`` or either called with options."""
    if isinstance(node, ast.Call):
        node = node.func
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name == "dataclass"


def strip_docstrings(tree: ast.Module, *, class_docstrings: bool = False) -> ast.Module:
    """Remove the docstring of the module and of every class and function in ``tree``, in
    place (a body left empty gets a ``pass`` where the docstring was, so line numbers do
    not move); keep class docstrings when ``class_docstrings``, and those of ``@dataclass``
    classes always.  Returns ``tree``."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
            continue
        doc = _docstring(node.body)
        if doc is None:
            continue
        if isinstance(node, ast.ClassDef) and (
                class_docstrings or any(map(_is_dataclass_decorator, node.decorator_list))):
            continue
        node.body.remove(doc)
        if not node.body and not isinstance(node, ast.Module):
            node.body.append(ast.copy_location(ast.Pass(), doc))
    return tree


# The location table of a 3.11 code object (CPython's Objects/locations.md): entries of up
# to 8 code units, a first byte 1CCCCLLL (code, length - 1); code 13 is "line only", a
# signed varint line delta; code 15 is "no location".
_LINE_ONLY = 13
_NO_LOCATION = 15
_MAX_UNITS = 8


def _varint(out: bytearray, value: int) -> None:
    while value >= 64:
        out.append(64 | (value & 63))
        value >>= 6
    out.append(value)


def _line_table(code: CodeType) -> bytes:
    out = bytearray()
    previous = code.co_firstlineno
    for start, end, line in code.co_lines():
        units = (end - start) // 2
        while units > 0:
            length = min(units, _MAX_UNITS)
            units -= length
            if line is None:
                out.append(0x80 | (_NO_LOCATION << 3) | (length - 1))
                continue
            out.append(0x80 | (_LINE_ONLY << 3) | (length - 1))
            delta = line - previous
            _varint(out, (-delta << 1) | 1 if delta < 0 else delta << 1)
            previous = line
    return bytes(out)


def drop_column_positions(code: CodeType) -> CodeType:
    """``code`` (and every code object nested in it) with line numbers but no columns in
    its location table: what the compiler makes under ``-X no_debug_ranges``."""
    consts = tuple(drop_column_positions(c) if isinstance(c, CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_linetable=_line_table(code), co_consts=consts)


def check_bytecode(data: bytes, path: Path) -> bytes:
    """A sourceless ``.pyc`` found on the build path, accepted only for this interpreter."""
    if data[:4] != _MAGIC:
        raise ImageError(f"{path}: bytecode for another Python version")
    return data
