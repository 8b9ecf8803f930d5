"""Fixtures for the image tests: an isolated per-user cache and config, small appliances
written into temporary directories, and images of them built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fata import image

# A small appliance exercising what images must carry: the runtime, a baked data directory,
# a runtime argument, and (on request) a dynamic import that is not in its manifest or a
# look at its own import path.
TINY_CONFIG = '''\
from fata.config import Appliance, arg, console, kv_ro

appliance = Appliance(
    name="tiny", version="0.1.0", entry="fata_tiny.unikernel:start",
    description="fata-tiny: a test appliance",
    devices={"console": console(), "data": kv_ro("data")},
    args=[arg("mode", default="hello", help="what to do")],
)
'''

TINY_UNIKERNEL = '''\
"""The tiny test appliance (package fata_tiny)."""

import importlib
import sys

from fata_tiny.greeting import greet


async def start(console, data, args):
    if args.mode == "hello":
        console.info(greet(data.get("greeting.txt").decode().strip()))
    elif args.mode == "import":
        name = "xml" + ".dom"  # computed: the build cannot see it
        importlib.import_module(name)
    elif args.mode == "paths":
        for entry in sys.path:
            print("PATH", entry, flush=True)
        for module in sorted(sys.modules.values(), key=lambda m: m.__name__):
            origin = getattr(getattr(module, "__spec__", None), "origin", None)
            print("MODULE", module.__name__, origin, flush=True)
    elif args.mode == "maps":
        with open("/proc/self/maps") as maps:
            for line in maps:
                if ".so" in line or "memfd:" in line:
                    print("MAP", line.split(None, 5)[-1].strip(), flush=True)
    elif args.mode == "midrun":  # the baked data changed in the extraction during the run
        import os
        path = data.root / "greeting.txt"
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o644)
        path.write_bytes(b"tampered with")
        try:
            print("READ", data.get("greeting.txt").decode().strip(), flush=True)
        except Exception as exc:
            print("REFUSED", type(exc).__name__, exc, flush=True)
    elif args.mode == "fail":
        raise SystemExit(3)
    elif args.mode == "warn":
        import warnings
        warnings.simplefilter("always")
        warnings.warn("unclosed thing", ResourceWarning, source=object())
        print("after the warning", flush=True)
'''

TINY_GREETING = '''\
def greet(text: str) -> str:
    """The greeting fata_tiny logs."""
    return f"fata_tiny says {text}"
'''

TINY_TEST = '''\
from fata_tiny.greeting import greet


def test_greet():
    assert greet("x") == "fata_tiny says x"
'''

# An appliance whose image must carry cryptography's Rust extension and use it.
CRYPTO_CONFIG = '''\
from fata.config import Appliance, console

appliance = Appliance(
    name="cryptotest", version="1.0", entry="fata_cryptotest.unikernel:start",
    devices={"console": console()},
)
'''

CRYPTO_UNIKERNEL = '''\
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import hashes


async def start(console, args):
    key = Ed25519PrivateKey.generate()
    signature = key.sign(b"sealed")
    key.public_key().verify(signature, b"sealed")
    aead = AESGCM(AESGCM.generate_key(bit_length=128))
    nonce = b"\\0" * 12
    plain = aead.decrypt(nonce, aead.encrypt(nonce, b"appliance", None), None)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(plain)
    console.info(f"crypto ok {plain.decode()} {digest.finalize().hex()[:8]}")
'''


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text) under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def make_tiny(root: Path) -> Path:
    """The tiny appliance in ``root``."""
    return write_tree(root, {
        "config.py": TINY_CONFIG,
        "fata_tiny/__init__.py": "",
        "fata_tiny/unikernel.py": TINY_UNIKERNEL,
        "fata_tiny/greeting.py": TINY_GREETING,
        "data/greeting.txt": "hello from the data\n",
        "tests/test_greeting.py": TINY_TEST,
        "README.md": "# fata-tiny\n\nThe fata_tiny appliance (`pip install fata-tiny`), "
                     "benchmarked by fata_tiny_bench.\n",
    })


def fata_cli(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess:
    """Run the ``fata`` command line in a subprocess (so ``run`` may exec)."""
    return subprocess.run([sys.executable, "-m", "fata", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session", autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ``XDG_CONFIG_HOME`` (so a fresh development key) and ``XDG_CACHE_HOME``."""
    base = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                                            "SOURCE_DATE_EPOCH")}
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    os.environ.pop("SOURCE_DATE_EPOCH", None)
    yield base
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("appliances") / "tiny")


@pytest.fixture(scope="session")
def tiny_image(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image.build(tiny_dir, {}, tmp_path_factory.mktemp("dist"), log=lambda *a: None)


@pytest.fixture(scope="session")
def crypto_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("appliances") / "cryptotest", {
        "config.py": CRYPTO_CONFIG,
        "fata_cryptotest/__init__.py": "",
        "fata_cryptotest/unikernel.py": CRYPTO_UNIKERNEL,
    })
    return image.build(root, {}, tmp_path_factory.mktemp("dist"), log=lambda *a: None)


def flip_byte(src: Path, dst: Path, offset: int) -> Path:
    """Copy ``src`` to ``dst`` with the byte at ``offset`` inverted."""
    data = bytearray(src.read_bytes())
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def member_data_offset(path: Path, name: str) -> int:
    """Offset of the middle of member ``name``'s stored data in the zip file."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    data = path.read_bytes()
    header = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[header + 26: header + 30])
    start = header + 30 + name_len + extra_len
    return start + info.compress_size // 2
