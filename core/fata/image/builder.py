"""``fata build``: from an appliance directory and configure-time keys to one sealed image.

The steps, each deterministic so that the same inputs give the same bytes:

1. load ``config.py`` and bake the configuration for the keys;
2. generate the image's main (``mainmodule``) and walk the closure of modules it reaches
   (``closure``), starting from it, the interpreter's own start-up modules and the
   configuration's ``include`` packages;
3. compile every source module to sourceless, hash-based bytecode without docstrings or
   column positions (``bytecode``; modules the interpreter has frozen are not copied), copy
   extension modules (and the shared libraries third-party wheels bundle for them),
   stripped (``strip``), and the ``kv_ro`` data directories under ``data/`` (those with a
   ``generate`` hook made now, in a scratch directory); write
   ``__fata_leftout__`` (``leftout``), which names at run time what the walk left out;
   and the interpreter (``interpreter``): the Python binary, libpython and the ELF closure
   of it and of every extension module, with the dynamic loader, stripped, under
   ``interp/``, and the ``launch`` script that starts an extraction without ``fata``
   (unless ``FATA_SELF_CONTAINED=0``: the image then runs on the host's Python);
4. write the manifest (every member with size, SHA-256 and kind, what was left out and
   why, what stripping saved, how the bytecode was compiled, the modules run frozen, the
   interpreter and each of its files' origin), sign it with
   ed25519 and write the archive (``archive``) with one timestamp: ``SOURCE_DATE_EPOCH``, else the git
   commit time, else 1980-01-01.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fata
from fata import config as fata_config
from fata.image import closure as closure_mod
from fata.image import interpreter as interp_mod
from fata.image import leftout
from fata.image import strip as strip_mod
from fata.image.archive import Member, write_archive
from fata.image.bytecode import (
    DOCSTRINGS_KEPT,
    check_bytecode,
    keeps_class_docstrings,
    pyc_bytes,
)
from fata.image.errors import ImageError
from fata.image.keys import SigningKey, dev_signing_key, load_signing_key
from fata.image.mainmodule import MAIN_NAME, main_source
from fata.image.manifest import (
    FORMAT,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    dumps,
    python_tag,
    signature_bytes,
)
from fata.image.paths import fata_source_root, repo_root_for

TARGETS = ("unix", "xen")
XEN_GUEST_MODULES = ("fata.platform.xen_netfront", "fata.platform.xen_blkfront",
                     "fata.platform.xen_console")
"""What a ``--target xen`` image adds: the guest's devices, which ``--netif NAME=xen:N``
imports only when given."""
IMAGE_SUFFIX = ".fata"
LIB = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}"
FALLBACK_EPOCH = 315532800  # 1980-01-01: no SOURCE_DATE_EPOCH and no git history


def build(
    appliance_dir: Path,
    keys: dict[str, str] | None = None,
    out_dir: Path | None = None,
    sign_key: Path | None = None,
    log: Callable[..., Any] = print,
    target: str = "unix",
) -> Path:
    """Build the image of ``appliance_dir`` for ``keys``; return the image's path."""
    if target not in TARGETS:
        raise ImageError(f"target {target!r} is not supported yet (targets: {', '.join(TARGETS)})")
    appliance = fata_config.load(appliance_dir)
    keys = dict(keys or {})
    if target == "xen":  # a guest's network is netfront under Fata's own TCP/IP
        if keys.setdefault("net", "direct") != "direct":
            raise ImageError("--target xen images run on --net direct (netfront below Fata's "
                             "own TCP/IP), not --net " + keys["net"])
    appliance = appliance.specialise(keys)  # the when(...) variants of these keys
    baked = appliance.bake(keys)
    if target == "xen":
        baked["include"] = sorted({*baked["include"], *XEN_GUEST_MODULES})
    assert appliance.directory is not None
    signer = load_signing_key(sign_key) if sign_key is not None else dev_signing_key()
    epoch = build_epoch(appliance.directory)
    log(f"building {baked['name']} {baked['version']} for {target} "
        f"({', '.join(f'{k}={v}' for k, v in baked['keys'].items()) or 'no keys'})")

    members, counts, extra = collect(appliance, baked, log, epoch)
    manifest = make_manifest(baked, target, epoch, members, signer, extra.get("interpreter"))
    manifest.update(extra)
    manifest_bytes = dumps(manifest)
    signature = signature_bytes(signer.key_id, signer.sign(manifest_bytes))
    archive = [Member(MANIFEST_NAME, manifest_bytes), Member(SIGNATURE_NAME, signature)]
    archive += [members[name][0] for name in sorted(members)]

    out = Path(out_dir) if out_dir is not None else default_out_dir(appliance.directory)
    path = out / image_file_name(baked, target)
    write_archive(path, archive, epoch)
    size = path.stat().st_size
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    if extra["frozen"]:
        summary += f"; {len(extra['frozen'])} more frozen in the interpreter"
    log(f"{len(archive)} files ({summary}), {size / 1e6:.1f} MB, signed by {signer.label} "
        f"[{signer.key_id}]")
    return path


def default_out_dir(appliance_dir: Path) -> Path:
    """``images/dist/`` of the repository the appliance is in (git-ignored)."""
    return repo_root_for(appliance_dir) / "images" / "dist"


def image_file_name(baked: dict[str, Any], target: str) -> str:
    """``dns-0.1.0-unix-socket.fata``: name, version, target and the keys' values (the
    built-in ``loop`` key only when it is not the default asyncio)."""
    keys = {k: v for k, v in baked["keys"].items() if (k, v) != ("loop", "asyncio")}
    parts = [baked["name"], baked["version"], target]
    if "net" in keys:
        parts.append(keys["net"])
    parts += [f"{k}-{v}" for k, v in sorted(keys.items()) if k != "net"]
    return "-".join(p.replace("/", "_") for p in parts) + IMAGE_SUFFIX


def build_epoch(directory: Path) -> int:
    """``SOURCE_DATE_EPOCH``, else the commit time of the git checkout, else 1980-01-01."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ImageError(f"SOURCE_DATE_EPOCH={env!r} is not an integer") from None
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), "log", "-1", "--format=%ct"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return FALLBACK_EPOCH
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else FALLBACK_EPOCH


def _image_dir(module: closure_mod.Module) -> str:
    """Where a module's search root goes in the image."""
    if module.origin == "stdlib" and module.root.name == "lib-dynload":
        return f"{LIB}/lib-dynload"
    return LIB


def collect(
    appliance: fata_config.Appliance, baked: dict[str, Any], log: Callable[..., Any],
    epoch: int = FALLBACK_EPOCH,
) -> tuple[dict[str, tuple[Member, str]], dict[str, int], dict[str, Any]]:
    """Every member but the manifest and signature: {path: (member, kind)}, module counts,
    and the manifest's ``left_out``, ``stripped``, ``bytecode`` and ``frozen`` sections."""
    assert appliance.directory is not None
    source = leftout.require_hook(
        main_source(baked, baked["platform_modules"], appliance.entry_module))
    roots = closure_mod.default_roots(appliance.directory, fata_source_root())
    index = closure_mod.ModuleIndex(roots)
    includes = [f"{name}.*" for name in baked["include"]]
    found = closure_mod.compute(index, [*closure_mod.INTERPRETER_MODULES, *includes], source,
                                MAIN_NAME, included=tuple(baked["include"]))

    needed = ["fata.runtime.boot", appliance.entry_module, *baked["platform_modules"],
              *baked["include"]]
    for name in needed:
        if name not in found.modules:
            raise ImageError(f"module {name} (needed by {baked['name']}) cannot be found "
                             f"(looked in {appliance.directory}, {fata_source_root()} and "
                             f"the Python installation)")
    for name, importers in sorted(found.missing.items()):
        ours = sorted(i for i in importers
                      if i in found.modules and found.modules[i].origin in ("appliance", "fata"))
        if ours:
            log(f"warning: {', '.join(ours)} imports {name}, which cannot be found; "
                f"the image will raise ImportError if that import runs")

    left_out = found.left_out_report()
    if left_out:
        log(leftout.summary(left_out))
    tool = strip_mod.strip_tool()
    stripped = {"tool": strip_mod.tool_version(tool) if tool else None,
                "args": list(strip_mod.STRIP_ARGS), "files": 0, "bytes_before": 0,
                "bytes_after": 0}
    if tool is None:
        log("warning: no `strip` (binutils) here: shared objects go into the image unstripped")

    def shared_object(path: Path) -> bytes:
        data = path.read_bytes()
        if tool is None:
            return data
        out = strip_mod.strip_bytes(data, tool)
        stripped["files"] += 1
        stripped["bytes_before"] += len(data)
        stripped["bytes_after"] += len(out)
        return out

    members: dict[str, tuple[Member, str]] = {}
    counts: dict[str, int] = {}
    sources: dict[str, Path] = {}  # extension module member -> the file it was made from
    wheel_libs: set[Path] = set()  # libraries wheels bundle, in the image beside them

    def add(path: str, data: bytes, kind: str, mode: int = 0o644) -> None:
        if path in members and members[path][0].data != data:
            raise ImageError(f"two different files want the image path {path}")
        members[path] = (Member(path, data, mode), kind)

    frozen: list[str] = []  # run from the interpreter's frozen copy: no member
    for name in sorted(found.modules):
        module = found.modules[name]
        if module.frozen:
            frozen.append(name)
            continue
        counts[module.origin] = counts.get(module.origin, 0) + 1
        if module.path is None:
            continue
        rel = module.path.relative_to(module.root).as_posix()
        base = _image_dir(module)
        if module.kind == "source":
            display = rel
            target_rel = rel[: -len(".py")] + ".pyc"
            pyc = pyc_bytes(module.path.read_bytes(), display,
                            class_docstrings=keeps_class_docstrings(name))
            add(f"{base}/{target_rel}", pyc, module.origin)
        elif module.kind == "bytecode":
            data = check_bytecode(module.path.read_bytes(), module.path)
            add(f"{base}/{rel}", data, module.origin)
        elif module.kind == "extension":
            add(f"{base}/{rel}", shared_object(module.path), module.origin, 0o755)
            sources[f"{base}/{rel}"] = module.path
            if module.origin == "third-party":
                for lib_path in bundled_libraries(module.path, module.root):
                    lib_rel = lib_path.relative_to(module.root).as_posix()
                    add(f"{base}/{lib_rel}", shared_object(lib_path), module.origin, 0o755)
                    wheel_libs.add(lib_path.resolve())

    main_pyc = pyc_bytes(source, f"{MAIN_NAME}.py")
    add(f"{LIB}/{MAIN_NAME}.pyc", main_pyc, "image")
    leftout_pyc = pyc_bytes(leftout.runtime_source(left_out), f"{leftout.MODULE_NAME}.py")
    add(f"{LIB}/{leftout.MODULE_NAME}.pyc", leftout_pyc, "image")

    generators = appliance.data_generators()
    for directory in appliance.data_directories():
        with tempfile.TemporaryDirectory(prefix="fata-data-") as scratch:
            if directory in generators:
                base_dir = Path(scratch)
                generate_data(appliance.directory, generators[directory], base_dir,
                              epoch, log)
            else:
                base_dir = appliance.directory / directory
            for path in sorted(base_dir.rglob("*")):
                rel_parts = path.relative_to(base_dir).parts
                if path.is_dir() or any(p in ("__pycache__", ".git") for p in rel_parts):
                    continue
                add(f"data/{directory}/{'/'.join(rel_parts)}", path.read_bytes(), "data")
    extra: dict[str, Any] = {"left_out": left_out, "stripped": stripped,
                             "bytecode": bytecode_section(found), "frozen": frozen}
    if self_contained():
        if not any(f"/lib-dynload/{name}." in path for path in members
                   for name in ("_hashlib", "_sha256")):
            # The seal hashes with the image's own SHA-256 module (run.py): carry one.
            sha = index.find("_sha256")
            if sha is not None and sha.kind == "extension" and sha.path is not None:
                member = f"{_image_dir(sha)}/{sha.path.relative_to(sha.root).as_posix()}"
                add(member, shared_object(sha.path), "stdlib", 0o755)
                sources[member] = sha.path
        extra["interpreter"] = add_interpreter(add, shared_object, sources.values(),
                                               wheel_libs)
    return members, counts, extra


def bytecode_section(found: closure_mod.Closure) -> dict[str, Any]:
    """The manifest's ``bytecode`` section: how the modules were compiled (``bytecode``),
    and which kept their class docstrings and why."""
    kept = sorted({p for name in found.modules for p in DOCSTRINGS_KEPT
                   if name == p or name.startswith(p + ".")})
    return {"docstrings": "stripped",
            "class_docstrings_kept": {p: DOCSTRINGS_KEPT[p] for p in kept},
            "dataclass_docstrings": "kept", "asserts": "kept", "columns": "dropped"}


def generate_data(appliance_dir: Path, entry: str, out: Path, epoch: int,
                  log: Callable[..., Any]) -> None:
    """Run a ``kv_ro(..., generate="module:function")`` hook: ``function(out, epoch)`` with
    the appliance directory importable; any failure is an ``ImageError`` naming the hook."""
    module_name, _, function_name = entry.partition(":")
    sys.path.insert(0, str(appliance_dir))
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
        function(out, epoch)
    except Exception as exc:  # the hook is the appliance's code: report it, do not crash
        raise ImageError(f"data generator {entry} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(appliance_dir))
    log(f"generated data with {entry}")


def self_contained() -> bool:
    """Whether images carry their interpreter (the default; ``FATA_SELF_CONTAINED=0``
    builds an image that runs on the host's Python, as images before it did)."""
    return os.environ.get("FATA_SELF_CONTAINED", "1") not in ("0", "no", "false", "")


def add_interpreter(add: Callable[..., None], shared_object: Callable[[Path], bytes],
                    extensions: Iterable[Path], wheel_libs: set[Path]) -> dict[str, Any]:
    """Add the interpreter of an image holding ``extensions`` (and the libraries wheels
    bundle, ``wheel_libs``, which are in the image already), and its launcher; return the
    manifest's ``interpreter`` section (with each file's origin)."""
    files = interp_mod.bundle(sorted(extensions))
    origins: dict[str, str] = {}
    section: dict[str, Any] = {"lib": interp_mod.LIB_DIR, "launcher": interp_mod.LAUNCHER}
    for bundled in files:
        if bundled.source.resolve() in wheel_libs:
            continue  # a wheel's own library, already in the image beside its module
        add(bundled.member, shared_object(bundled.source.resolve()), "interpreter", 0o755)
        origins[bundled.member] = interp_mod.origin(bundled.source)
        if bundled.role in ("binary", "loader"):
            section[bundled.role] = bundled.member
    section["origins"] = origins
    section["python"] = sys.version.split()[0]
    add(interp_mod.LAUNCHER, interp_mod.launcher(section, f"{LIB}/{MAIN_NAME}.pyc"),
        "interpreter", 0o755)
    return section



def bundled_libraries(extension: Path, site: Path) -> list[Path]:
    """Shared libraries a wheel bundles in ``<dist>.libs/`` that ``extension`` links to
    (found by name in its bytes, transitively): auditwheel's layout."""
    lib_dirs = [d for d in site.glob("*.libs") if d.is_dir()]
    if not lib_dirs:
        return []
    candidates = {p.name: p for d in lib_dirs for p in d.iterdir() if p.is_file()}
    found: dict[str, Path] = {}
    pending = [extension]
    while pending:
        data = pending.pop().read_bytes()
        for name, path in candidates.items():
            if name not in found and name.encode() in data:
                found[name] = path
                pending.append(path)
    return sorted(found.values())


def make_manifest(
    baked: dict[str, Any],
    target: str,
    epoch: int,
    members: dict[str, tuple[Member, str]],
    signer: SigningKey,
    interpreter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of an image holding ``members``."""
    files = [
        {"path": path, "size": len(member.data), "sha256": hashlib.sha256(member.data).hexdigest(),
         "kind": kind}
        for path, (member, kind) in sorted(members.items())
    ]
    origins = (interpreter or {}).get("origins", {})
    for entry in files:
        if entry["path"] in origins:
            entry["origin"] = origins[entry["path"]]
    return {
        "format": FORMAT,
        "name": baked["name"],
        "version": baked["version"],
        "target": target,
        "keys": baked["keys"],
        "config": baked,
        "python": python_tag(),
        "fata_version": fata.__version__,
        "build_epoch": epoch,
        "main": f"{LIB}/{MAIN_NAME}.pyc",
        "key_id": signer.key_id,
        "key_label": signer.label,
        "files": files,
    }
