"""The bytecode images carry: no docstrings (but those code reads), asserts kept, line
numbers kept and column positions dropped exactly as ``-X no_debug_ranges`` compiles."""

from __future__ import annotations

import marshal
import subprocess
import sys
import textwrap
import traceback
import types
from pathlib import Path

import dns.name
import pytest
from fata.image import bytecode, closure

SAMPLE = textwrap.dedent('''\
    """The module's docstring."""
    from __future__ import annotations

    import dataclasses


    class Plain:
        """A class's docstring."""

        def method(self) -> int:
            """A method's docstring."""
            return 1


    class OnlyDoc(Exception):
        """Nothing but a docstring."""


    @dataclasses.dataclass
    class Record:
        """A dataclass keeps its docstring: dataclasses would compute one."""

        x: int = 0


    def outer():
        """Outer."""
        def inner():
            """Inner."""
        async def coroutine():
            """A coroutine's docstring."""
        return inner, coroutine


    def only_doc():
        """Nothing but a docstring."""


    def checks(value):
        """Asserts stay."""
        assert value > 0, "value must be positive"
        return value


    def fails():
        """Raises on line 47."""
        return {}["missing"]
    ''')


def load(pyc: bytes, name: str = "sample") -> types.ModuleType:
    """Run a pyc's code as a new module (16-byte header, then the marshalled code)."""
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses looks the module up
    try:
        exec(marshal.loads(pyc[16:]), module.__dict__)
    finally:
        del sys.modules[name]
    return module


def test_a_stripped_module_has_no_docstrings_but_keeps_asserts_and_lines() -> None:
    module = load(bytecode.compile_pyc(SAMPLE.encode(), "sample.py"))
    assert module.__doc__ is None
    assert module.Plain.__doc__ is None and module.Plain.method.__doc__ is None
    assert module.OnlyDoc.__doc__ is None and module.only_doc() is None
    inner, coroutine = module.outer()
    assert module.outer.__doc__ is None and inner.__doc__ is None
    assert coroutine.__doc__ is None
    assert module.Record.__doc__.startswith("A dataclass keeps its docstring")
    assert module.checks(2) == 2
    with pytest.raises(AssertionError, match="value must be positive"):
        module.checks(-1)
    with pytest.raises(KeyError) as caught:
        module.fails()
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno) == ("sample.py", SAMPLE.splitlines().index(
        '    return {}["missing"]') + 1)
    assert frame.colno is None  # columns dropped, the line kept
    assert any(f.name == "fails" for f in traceback.extract_tb(caught.value.__traceback__))


def test_class_docstrings_are_kept_where_code_reads_them() -> None:
    module = load(bytecode.compile_pyc(SAMPLE.encode(), "sample.py", class_docstrings=True))
    assert module.Plain.__doc__ == "A class's docstring."
    assert module.OnlyDoc.__doc__ == "Nothing but a docstring."
    assert module.__doc__ is None and module.Plain.method.__doc__ is None
    assert bytecode.keeps_class_docstrings("dns.name") and bytecode.keeps_class_docstrings("dns")
    assert not bytecode.keeps_class_docstrings("dnsx") and not bytecode.keeps_class_docstrings(
        "fata_dns.server")


def test_dnspython_exceptions_keep_their_message() -> None:
    """dnspython's exception message is its class docstring; the DNS appliance reports it."""
    source = Path(dns.name.__file__).read_bytes()
    module = load(bytecode.compile_pyc(source, "dns/name.py", class_docstrings=True),
                  "dns.name_as_in_the_image")
    with pytest.raises(module.LabelTooLong) as caught:
        module.from_text("a" * 64 + ".org")
    assert str(caught.value) == "A DNS label is > 63 octets long."
    assert module.from_text.__doc__ is None
    stripped = load(bytecode.compile_pyc(source, "dns/name.py"), "dns.name_stripped")
    with pytest.raises(stripped.LabelTooLong) as caught:
        stripped.from_text("a" * 64 + ".org")
    assert str(caught.value) == "None"  # what stripping them would have done


# CPython's own compiler under -X no_debug_ranges, for the comparison below.
_NATIVE = """
import marshal, sys
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    data = marshal.dumps(code)
    sys.stdout.buffer.write(len(data).to_bytes(8, "little") + data)
"""


def _modules_to_compare() -> list[Path]:
    stdlib = Path(closure.sysconfig.get_paths()["stdlib"])
    return [Path(bytecode.__file__), Path(closure.__file__), Path(dns.name.__file__),
            stdlib / "asyncio" / "base_events.py", stdlib / "typing.py",
            stdlib / "argparse.py", stdlib / "dataclasses.py"]


def test_column_positions_are_dropped_as_no_debug_ranges_compiles() -> None:
    paths = _modules_to_compare()
    out = subprocess.run([sys.executable, "-X", "no_debug_ranges", "-I", "-c", _NATIVE,
                          *map(str, paths)], capture_output=True, check=True).stdout
    natives = []
    while out:
        size = int.from_bytes(out[:8], "little")
        natives.append(marshal.loads(out[8:8 + size]))
        out = out[8 + size:]
    assert len(natives) == len(paths)
    for path, native in zip(paths, natives, strict=True):
        full = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        dropped = bytecode.drop_column_positions(full)
        assert dropped == native, path  # co_code, consts, names, location table...
        assert len(marshal.dumps(dropped)) < len(marshal.dumps(full)), path

        def pairs(code: types.CodeType) -> list:
            nested = [pairs(c) for c in code.co_consts if isinstance(c, types.CodeType)]
            return [list(code.co_lines()), [p[0] for p in code.co_positions()], nested]

        assert pairs(dropped) == pairs(full), path  # every line number kept

        def columns(code: types.CodeType) -> set:
            found = {p[2:] for p in code.co_positions()}
            for const in code.co_consts:
                if isinstance(const, types.CodeType):
                    found |= columns(const)
            return found

        assert columns(dropped) == {(None, None)}, path


def test_the_cache_key_holds_the_compile_policy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plain = bytecode.pyc_bytes(SAMPLE.encode(), "sample.py")
    kept = bytecode.pyc_bytes(SAMPLE.encode(), "sample.py", class_docstrings=True)
    assert plain != kept
    assert bytecode.pyc_bytes(SAMPLE.encode(), "sample.py") == plain  # now from the cache
    assert len(list((tmp_path / "fata" / "pyc").rglob("*.pyc"))) == 2
