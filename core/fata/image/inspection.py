"""``fata inspect``: what an image holds and where its bytes go.

The report is the manifest plus a size breakdown by kind (appliance, fata, stdlib,
third-party, data, image, and the interpreter a self-contained image carries on a line of
its own), both as stored (deflated) and unpacked, the *closure* (every stored byte but the
interpreter's, ``MANIFEST.json`` and ``SIGNATURE`` included: what an appliance's own
choices weigh), the largest members, how the bytecode was compiled (``bytecode``), which
modules run from the interpreter's frozen copies, what stripping the shared objects saved,
what the build left out (``closure``), and whether the image verifies against the keys
trusted here.  It reads an image it cannot verify too (a tampered one is worth looking
at); the verdict says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fata.image.archive import ImageArchive
from fata.image.errors import ImageError
from fata.image.keys import trusted_keys
from fata.image.manifest import KINDS
from fata.image.verification import read_manifest, verify_image

_TOP = 10


def inspect(image: Path) -> dict[str, Any]:
    """The manifest of ``image`` with a size breakdown and a verification verdict."""
    image = Path(image)
    with ImageArchive(image) as archive:
        _, manifest = read_manifest(archive)
        stored = {name: info.compress_size for name, info in archive.infos.items()}
    breakdown: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        entries = [e for e in manifest["files"] if e["kind"] == kind]
        if entries:
            breakdown[kind] = {
                "files": len(entries),
                "bytes": sum(e["size"] for e in entries),
                "stored_bytes": sum(stored.get(e["path"], 0) for e in entries),
                "modules": sum(1 for e in entries if e["path"].endswith((".pyc", ".so"))),
            }
    largest = sorted(manifest["files"], key=lambda e: (-e["size"], e["path"]))[:_TOP]
    interpreter = {e["path"] for e in manifest["files"] if e["kind"] == "interpreter"}
    closure_stored = sum(n for name, n in stored.items() if name not in interpreter)
    try:
        verified = verify_image(image, trusted_keys())
        verdict = f"ok: intact, signed by trusted key {verified.trusted_by.key_id}"
        ok = True
    except ImageError as exc:
        verdict = str(exc)
        ok = False
    data = image.read_bytes()
    return {
        "image": str(image),
        "file_size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "verified": ok,
        "verification": verdict,
        "breakdown": breakdown,
        "closure_stored_bytes": closure_stored,
        "largest": [{"path": e["path"], "size": e["size"], "kind": e["kind"]} for e in largest],
        "manifest": manifest,
    }


def _mb(n: int) -> str:
    return f"{n / 1e6:8.2f} MB"


def _interpreter_line(manifest: dict[str, Any], row: dict[str, int] | None) -> list[str]:
    section = manifest.get("interpreter")
    if not section:
        return ["interp    none: runs on the Python that runs fata (built without its own)"]
    libraries = sorted(p.rpartition("/")[2] for p in section.get("origins", {})
                       if p.startswith(section["lib"] + "/") and p != section["loader"])
    size = (f", {row['bytes'] / 1e6:.2f} MB unpacked, {row['stored_bytes'] / 1e6:.2f} MB stored"
            if row else "")
    return [f"interp    {section['binary']} (Python {section.get('python', '?')}) with "
            f"{', '.join(libraries)} and the loader {section['loader']}{size}; "
            f"started by ./{section.get('launcher', 'launch')} without fata"]


def format_inspect(info: dict[str, Any]) -> str:
    """The report as text for a person."""
    m = info["manifest"]
    py = m["python"]
    keys = ", ".join(f"{k}={v}" for k, v in sorted(m.get("keys", {}).items())) or "none"
    lines = [
        f"image     {info['image']}",
        f"appliance {m['name']} {m['version']}  target {m['target']}  keys {keys}",
        f"python    {py.get('implementation')} {py.get('version')} ({py.get('soabi')}, "
        f"{py.get('platform')})",
        *_interpreter_line(m, info["breakdown"].get("interpreter")),
        f"built     epoch {m.get('build_epoch')} with fata {m.get('fata_version')}",
        f"signed    {m.get('key_label')} [{m['key_id']}]",
        f"verify    {info['verification']}",
        f"size      {info['file_size'] / 1e6:.2f} MB, sha256 {info['sha256']}",
        "",
        f"{'kind':<12} {'files':>6} {'modules':>8} {'unpacked':>11} {'stored':>11}",
    ]
    total_files = total_bytes = total_stored = total_modules = 0
    for kind, row in info["breakdown"].items():
        lines.append(f"{kind:<12} {row['files']:>6} {row['modules']:>8} {_mb(row['bytes']):>11} "
                     f"{_mb(row['stored_bytes']):>11}")
        total_files += row["files"]
        total_bytes += row["bytes"]
        total_stored += row["stored_bytes"]
        total_modules += row["modules"]
    lines.append(f"{'total':<12} {total_files:>6} {total_modules:>8} {_mb(total_bytes):>11} "
                 f"{_mb(total_stored):>11}")
    lines += ["", f"closure   {info['closure_stored_bytes'] / 1e6:.2f} MB stored: every member "
                  f"but the interpreter's, with MANIFEST.json and SIGNATURE"]
    bytecode = m.get("bytecode")
    if bytecode:
        kept = ", ".join(sorted(bytecode.get("class_docstrings_kept", {})))
        kept = f" and of the classes of {kept}" if kept else ""
        lines.append(f"bytecode  docstrings {bytecode['docstrings']} (but those of dataclasses"
                     f"{kept}), asserts {bytecode['asserts']}, column positions "
                     f"{bytecode['columns']} (tracebacks keep their lines)")
    if m.get("frozen"):
        lines.append(f"frozen    {len(m['frozen'])} modules run from the interpreter's frozen "
                     f"copies, not members: {', '.join(m['frozen'])}")
    stripped = m.get("stripped")
    if stripped is not None and stripped.get("tool") is None:
        lines += ["", "stripped  no: the build machine had no `strip`"]
    elif stripped and stripped.get("files"):
        lines += ["", f"stripped  {stripped['files']} shared objects with {stripped['tool']} "
                      f"{' '.join(stripped['args'])}: {_mb(stripped['bytes_before']).strip()} "
                      f"-> {_mb(stripped['bytes_after']).strip()} unpacked (sizes above are "
                      f"after)"]
    left_out = m.get("left_out")
    if left_out:
        lines.append(f"left out  {len(left_out)} modules reached only by imports the appliance "
                     f"is not known to run: {', '.join(sorted(left_out))}")
    lines += ["", "largest members:"]
    lines += [f"  {_mb(e['size'])}  {e['kind']:<11} {e['path']}" for e in info["largest"]]
    config = m.get("config", {})
    if config.get("devices"):
        devices = ", ".join(f"{n}={d['kind']}" for n, d in sorted(config["devices"].items()))
        lines += ["", f"devices   {devices}"]
    if config.get("platform_modules"):
        lines.append(f"platform  {', '.join(config['platform_modules'])}")
    return "\n".join(lines)
