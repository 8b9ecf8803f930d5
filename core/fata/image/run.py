"""``fata run IMAGE``: verify, extract once, and start the image sealed to its manifest.

A self-contained image (the default build) runs on its own interpreter: the Python binary,
libpython and their shared libraries under ``interp/``, started through the image's own
dynamic loader (``interp/lib/ld-linux-x86-64.so.2 --library-path <root>/interp/lib
<root>/interp/bin/python3.11 ...``), so neither the host's Python nor its loader or libraries
are used, and an image built for another Python runs all the same.  An image built with
``FATA_SELF_CONTAINED=0`` runs on the interpreter that runs ``fata`` (the image records which
Python it was built for, and a different one is refused before anything starts).

Before the ``execve``, every file of the image's interpreter (binary, libraries, loader) is
read from the extraction and its SHA-256 compared with the signed manifest, in this run; a
difference sends the run through full verification, which re-extracts.  Those files are
then mapped by the kernel and the loader by path, not from the bytes that were hashed, so a
residual window remains (TOCTOU): a process of the same user (or root) that can write the
extraction and replaces a file between the check and the ``execve`` or a library's mapping
runs its bytes.  The extraction is read-only (files 0444/0555, directories 0555), which
stops accidents and other users, not the owner; closing the window would need the loader
and libraries loaded from sealed memfds.  Everything the interpreter imports is checked as
below, with no window.  The first run verifies
every byte and extracts the members into a content-addressed, read-only directory
(``$XDG_CACHE_HOME/fata/images/<manifest sha256>/``: files 0444, extension modules 0555,
directories 0555; written under a temporary name and renamed).  A later run of the same
image file re-checks only the signature over the manifest, and compares size, mtime, ctime
and inode of every extracted file with what was recorded when it was verified: any
difference, including a file rewritten with its size and mtime put back (``os.utime``
cannot restore a ctime), sends the run through full verification, which re-extracts.

That comparison only decides *when to repair*; it is not what the seal rests on.  The
process ``execve``s the interpreter with ``-X frozen_modules=on -S -s -B -P -c <sealboot
source>`` (the modules it has frozen come from libpython, which is hashed like the rest of
the interpreter, not from member files) and a sealed memfd holding the verified manifest's
member hashes (``sealboot``): every module is read into memory, checked against its
SHA-256 and executed from the bytes that were checked (extension modules via a memfd), the
baked data is checked before the appliance starts, and nothing that is not a member can be
imported.  A member that differs is refused with an error naming it, and the next run
repairs the extraction.  So every byte a run executes or reads as baked data was checked
against the signed manifest in that run, whatever happened to the cache; see ``sealboot``
for the threat model.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import marshal
import os
import shutil
import stat
import sys
import zipfile
from dataclasses import dataclass, field
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from fata.image.archive import ImageArchive
from fata.image.errors import ImageError
from fata.image.keys import trusted_keys
from fata.image.manifest import python_mismatch, python_tag
from fata.image.paths import cache_home
from fata.image.verification import VerifiedImage, check_signature, read_manifest, verify_image

_STAMP = ".fata-extracted"
KEEP_EXTRACTED = 8  # extracted images kept in the cache, most recently run first


@dataclass(frozen=True)
class Launch:
    """How to start an image: the program, its arguments and environment."""

    executable: str
    argv: list[str]
    env: dict[str, str]
    root: Path
    pass_fds: tuple[int, ...] = field(default=())
    """Sealed memfds the started process needs (``sealboot``): pass them to a child, and
    :meth:`close` them in this process once it has started."""

    def close(self) -> None:
        """Close this process's copies of the launch's memfds."""
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass


def extract(verified: VerifiedImage) -> Path:
    """The directory holding the image's members, extracting them if needed."""
    digest = hashlib.sha256(verified.manifest_bytes).hexdigest()
    base = cache_home() / "images"
    root = base / digest
    if root.is_dir():
        if _matches(root, verified):
            os.utime(root)  # recently used: pruned last
            return root
        remove_tree(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{digest}.{os.getpid()}.tmp"
    remove_tree(tmp)
    try:
        for name, data in verified.members.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o555 if _executable(name) else 0o444)
        (tmp / verified.manifest["main"]).parent.joinpath("lib-dynload").mkdir(exist_ok=True)
        (tmp / _STAMP).write_bytes(verified.manifest_bytes)
        (tmp / _STAMP).chmod(0o444)
        _make_read_only_dirs(tmp)
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process extracted the same image first: use its copy if it is intact.
            if not (root.is_dir() and _matches(root, verified)):
                raise
    except OSError as exc:
        raise ImageError(f"cannot extract {verified.path} into {root}: {exc}") from None
    finally:
        remove_tree(tmp)
    prune(base, keep=root)
    return root


def _executable(name: str) -> bool:
    """Whether a member is extracted executable: shared objects, the interpreter's files
    and the launcher."""
    return (name.endswith(".so") or ".so." in name or name.startswith(_INTERP_PREFIX)
            or name == _LAUNCHER)


_INTERP_PREFIX = "interp/"  # interpreter.PREFIX (not imported: it needs pyelftools)
_LAUNCHER = "launch"  # interpreter.LAUNCHER


def _make_read_only_dirs(top: Path) -> None:
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        os.chmod(dirpath, 0o555)


def remove_tree(top: Path) -> None:
    """Remove an extraction (its directories are read-only, which ``rmtree`` alone cannot
    get through as an ordinary user); missing is fine."""
    if not os.path.lexists(top):
        return
    for dirpath, _dirs, _files in os.walk(top):
        try:
            os.chmod(dirpath, 0o755)
        except OSError:
            pass
    shutil.rmtree(top, ignore_errors=True)


def prune(base: Path, keep: Path, limit: int = KEEP_EXTRACTED) -> None:
    """Remove all but the ``limit`` most recently used extracted images (each is tens of
    MB, and ``fata run DIR`` makes a new one whenever the appliance changes)."""
    try:
        entries = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in entries[limit:]:
        if old != keep:
            remove_tree(old)


def _matches(root: Path, verified: VerifiedImage) -> bool:
    """Whether an extracted directory still holds exactly the verified bytes."""
    try:
        if (root / _STAMP).read_bytes() != verified.manifest_bytes:
            return False
        for name, data in verified.members.items():
            if (root / name).read_bytes() != data:
                return False
    except OSError:
        return False
    return True


def interpreter() -> str:
    """The real interpreter binary behind ``sys.executable`` (not a virtualenv's link)."""
    return os.path.realpath(sys.executable)


def prepare(image: Path, argv: list[str], trust: list[Path] | tuple[Path, ...] = ()) -> Launch:
    """Verify and extract ``image``; return how to start it, sealed, with ``argv``.

    An image file whose SHA-256 equals that of one fully verified and extracted before is
    not read member by member again: equal digests mean equal bytes, so only the signature
    is re-checked (against today's trusted keys), and the started process checks each
    member it uses against the manifest (``sealboot``).  That keeps start-up fast without
    ever running bytes that were not verified in this run.
    """
    image = Path(image)
    keys = trusted_keys(list(trust))
    digest = _file_digest(image)
    known = _previously_verified(image, keys, digest)
    members: dict[str, bytes] | None = None
    if known is not None:
        manifest, root = known
        members = _boot_members(root, manifest, None)
        if members is not None and not _interpreter_intact(root, manifest):
            members = None  # repaired below: verified and extracted again
    if members is None:
        verified = verify_image(image, keys)
        manifest = verified.manifest
        _check_runnable(image, manifest, verified.members)
        root = extract(verified)
        _remember_verified(digest, root, manifest)
        members = _boot_members(root, manifest, verified.members)
        assert members is not None  # verified bytes, checked against the manifest
        if not _interpreter_intact(root, manifest):
            raise ImageError(f"{root}: the image's interpreter changed on disk while it was "
                             f"being extracted: refused")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    record = str(_verified_record(digest)) if digest is not None else ""
    fds = _seal_fds(image, root, manifest, members, record)
    env.update(PYTHONHOME=str(root), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUTF8="1", PYTHONPATH=f"/proc/self/fd/{fds['zip']}")
    section = manifest.get("interpreter")
    if section:
        binary = f"{root}/{section['binary']}"
        command = [f"{root}/{section['loader']}", "--library-path", f"{root}/{section['lib']}",
                   "--argv0", binary, binary]
    else:
        command = [interpreter()]
    exe = command[0]
    # The command line only loads sealboot from its sealed memfd (it would otherwise make
    # every `ps` line of an appliance 15 KB long); its own namespace, not __main__'s.
    stub = (f"import marshal,posix;b={{'__name__':'fata_sealboot'}};"
            f"exec(marshal.loads(posix.pread({fds['boot']},{1 << 24},0)),b);b['boot']()")
    # frozen_modules=on (an installed Python's default, said explicitly): the modules the
    # build found frozen in this interpreter are not members (closure.is_frozen).
    return Launch(exe, [*command, "-X", "frozen_modules=on", "-S", "-s", "-B", "-P", "-c", stub,
                        str(fds["table"]), *argv],
                  env, root, tuple(fds.values()))


def _interpreter_intact(root: Path, manifest: dict) -> bool:
    """Whether every file of the image's own interpreter (none for an image that runs on
    the host's) holds, on disk now, the bytes the manifest lists: checked just before the
    ``execve`` (see the module's docstring for the window that remains).  The files are
    hashed in parallel threads (``hashlib`` releases the GIL): ~13 MB for the DNS image."""
    entries = [e for e in manifest["files"] if e["kind"] == "interpreter"]
    if not entries:
        return True
    results: list[bool] = []

    def check(batch: list[dict]) -> None:
        for entry in batch:
            try:
                with open(root / entry["path"], "rb") as handle:
                    data = handle.read()
            except OSError:
                results.append(False)
                return
            results.append(len(data) == entry["size"]
                           and hashlib.sha256(data).hexdigest() == entry["sha256"])

    import threading

    entries.sort(key=lambda e: -e["size"])
    batches: list[list[dict]] = [[], []]
    sizes = [0, 0]
    for entry in entries:  # two batches of about equal bytes
        i = sizes.index(min(sizes))
        batches[i].append(entry)
        sizes[i] += entry["size"]
    thread = threading.Thread(target=check, args=(batches[1],))
    thread.start()
    check(batches[0])
    thread.join()
    return len(results) == len(entries) and all(results)


_BOOT_CODE: bytes | None = None


def _boot_code() -> bytes:
    """``sealboot``'s code, marshalled: the first code the image runs, handed over in a
    sealed memfd so that nothing is read from disk before it.  Taken from this ``fata``'s
    own bytecode cache (trusted as the rest of ``fata`` is), which saves the ~3 ms of
    compiling it in every started image."""
    global _BOOT_CODE
    if _BOOT_CODE is None:
        import importlib.util

        spec = importlib.util.find_spec("fata.image.sealboot")
        get_code = getattr(spec.loader, "get_code", None) if spec is not None else None
        code = get_code(spec.name) if get_code is not None else None
        if code is None:
            raise ImageError("fata.image.sealboot cannot be loaded: this fata is incomplete")
        _BOOT_CODE = marshal.dumps(code)
    return _BOOT_CODE


def _hash_module(manifest: dict) -> tuple[str, str | None]:
    """(module name, member) of the SHA-256 extension the seal hashes with: the image's
    ``_hashlib`` (OpenSSL's, several times faster), else its ``_sha256``; for an image with
    neither, the interpreter's own ``_sha256`` (member None: it is part of the interpreter
    the image runs on, trusted as the interpreter is, and hidden from the image's imports)."""
    paths = {e["path"] for e in manifest["files"]}
    dynload = manifest["main"].rpartition("/")[0] + "/lib-dynload/"
    for name in ("_hashlib", "_sha256"):
        for suffix in _EXTENSION_SUFFIXES:
            if dynload + name + suffix in paths:
                return name, dynload + name + suffix
    return "_sha256", None


def _host_hash_module() -> bytes | None:
    """The bytes of this interpreter's ``_sha256`` extension (None if it is built in)."""
    import _sha256

    path = getattr(_sha256, "__file__", None)
    return Path(path).read_bytes() if path else None


_EXTENSION_SUFFIXES = tuple(EXTENSION_SUFFIXES)


def _boot_members(root: Path, manifest: dict,
                  verified: dict[str, bytes] | None) -> dict[str, bytes] | None:
    """The verified bytes of what the started interpreter needs before ``sealboot`` can
    check anything itself: its hash module and the three start-up encodings modules.  From
    ``verified`` when given, else read from the extraction and checked here; None if one of
    them is missing or differs (the run then verifies and re-extracts the whole image)."""
    lib = manifest["main"].rpartition("/")[0]
    member = _hash_module(manifest)[1]
    wanted = [*(f"{lib}/{m}" for m in _START_UP_FILES), *([member] if member else [])]
    entries = {e["path"]: e for e in manifest["files"]}
    out: dict[str, bytes] = {}
    for member in wanted:
        entry = entries.get(member)
        if entry is None:
            return None
        if verified is not None:
            out[member] = verified[member]
            continue
        try:
            data = (root / member).read_bytes()
        except OSError:
            return None
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            return None
        out[member] = data
    return out


# What the interpreter imports before any Python code runs (with PYTHONUTF8=1).
_START_UP_FILES = ("encodings/__init__.pyc", "encodings/aliases.pyc", "encodings/utf_8.pyc")


def _sealed_memfd(name: str, data: bytes) -> int:
    """An in-memory file holding ``data`` that nobody can change any more (sealed)."""
    fd = os.memfd_create(f"fata-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    except OSError:
        os.close(fd)
        raise
    return fd


def _seal_fds(image: Path, root: Path, manifest: dict, members: dict[str, bytes],
              record: str) -> dict[str, int]:
    """The sealed memfds ``sealboot`` starts from: its own source (``boot``), the member
    table (``table``), the hash module (``hash``, absent when the interpreter has
    ``_sha256`` built in) and the start-up zip (``zip``)."""
    name, member = _hash_module(manifest)
    hash_bytes = members[member] if member is not None else _host_hash_module()
    lib = manifest["main"].rpartition("/")[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as startup:
        for rel in _START_UP_FILES:
            info = zipfile.ZipInfo(rel, (1980, 1, 1, 0, 0, 0))
            startup.writestr(info, members[f"{lib}/{rel}"])
    fds: dict[str, int] = {}
    try:
        fds["boot"] = _sealed_memfd("sealboot", _boot_code())
        if hash_bytes is not None:
            fds["hash"] = _sealed_memfd(name, hash_bytes)
        fds["zip"] = _sealed_memfd("start-up", buffer.getvalue())
        lines = [f"root\t{root}", f"lib\t{lib}", f"main\t{manifest['main']}",
                 f"hash\t{name}\t{fds.get('hash', -1)}\t{member or ''}",
                 f"zip\t/proc/self/fd/{fds['zip']}", f"record\t{record}",
                 f"fds\t{' '.join(str(fd) for fd in fds.values())}"]
        if "\n" in str(root) or "\t" in str(root):
            raise ImageError(f"{root}: a cache directory with a tab or newline cannot be sealed")
        for entry in manifest["files"]:
            path = entry["path"]
            if "\n" in path or "\t" in path:
                raise ImageError(f"{image}: member name {path!r} cannot be sealed")
            lines.append(f"M\t{entry['sha256']}\t{entry['size']}\t{path}")
        fds["table"] = _sealed_memfd("manifest", ("\n".join(lines) + "\n").encode("utf-8"))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _check_runnable(image: Path, manifest: dict, members: dict[str, bytes] | None) -> None:
    section = manifest.get("interpreter")
    if section:
        # Its own interpreter: only the machine must fit (and the kernel's ABI).
        here = python_tag()["platform"]
        if manifest["python"].get("platform") != here:
            raise ImageError(f"{image}: the image was built for "
                             f"{manifest['python'].get('platform')}, but this is {here}")
        paths = {e["path"] for e in manifest["files"] if e["kind"] == "interpreter"}
        if not {section.get("binary"), section.get("loader")} <= paths:
            raise ImageError(f"{image}: its interpreter section names files it does not hold")
    else:
        mismatch = python_mismatch(manifest["python"])
        if mismatch:
            raise ImageError(f"{image}: {mismatch}")
    if members is not None and manifest["main"] not in members:
        raise ImageError(f"{image}: its main {manifest['main']} is not one of its members")


def _file_digest(image: Path) -> str | None:
    try:
        with open(image, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _verified_record(digest: str) -> Path:
    return cache_home() / "verified" / digest


def _stat_of(root: Path, manifest: dict) -> dict[str, list[int]]:
    """Size, mtime, ctime and inode of every extracted member: a rewrite changes the ctime
    even when size and mtime are put back, a replacement changes the inode."""
    out = {}
    for entry in manifest["files"]:
        st = os.stat(root / entry["path"])
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{entry['path']} is not a regular file")
        out[entry["path"]] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    return out


def _remember_verified(digest: str | None, root: Path, manifest: dict) -> None:
    """Record that the file with this digest was verified member by member into ``root``,
    with the size, mtime, ctime and inode of every extracted file (a changed file is noticed
    cheaply and sends the next run through full verification, which repairs the
    extraction; a change this misses is refused by ``sealboot`` when the member is used)."""
    if digest is None:
        return
    record = _verified_record(digest)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{digest}.{os.getpid()}")
        tmp.write_text(json.dumps({"root": root.name, "stat": _stat_of(root, manifest)}))
        os.replace(tmp, record)
    except OSError:
        pass  # only an optimisation


def _previously_verified(image: Path, keys: list, digest: str | None
                         ) -> tuple[dict, Path] | None:
    """``(manifest, root)`` if these exact bytes (SHA-256 ``digest``) were verified and
    extracted before and the extraction looks unchanged since."""
    if digest is None:
        return None
    try:
        record = json.loads(_verified_record(digest).read_text())
        root = cache_home() / "images" / record["root"]
        stamp = (root / _STAMP).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(stamp).hexdigest() != root.name:
        return None
    with ImageArchive(image) as archive:
        manifest_bytes, manifest = read_manifest(archive)
        if manifest_bytes != stamp:
            return None
        check_signature(archive, manifest_bytes, manifest, keys)
    try:
        if _stat_of(root, manifest) != record["stat"]:
            return None
    except OSError:
        return None
    _check_runnable(image, manifest, None)
    os.utime(root)  # recently used: pruned last
    return manifest, root


def warm(image: Path, trust: list[Path] | tuple[Path, ...] = ()) -> bool:
    """Verify and extract ``image`` now, as its first run would, so that first run starts as
    fast as every later one (``fata build`` and ``fata pull`` call this: a new image's first
    start is otherwise ~0.2 s slower, which counts against an appliance's first answer).

    Best effort: an image signed by a key not trusted here, or built for another Python, is
    simply not warmed (``fata run`` says what is wrong when it is run); returns whether it was.
    """
    try:
        prepare(image, [], trust).close()
    except ImageError:
        return False
    return True


def run_image(image: Path, argv: list[str], trust: list[Path] | tuple[Path, ...] = ()) -> int:
    """Replace this process with the image's; returns only if it cannot start."""
    launch = prepare(image, argv, trust)
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in launch.pass_fds:
        os.set_inheritable(fd, True)
    try:
        os.execve(launch.executable, launch.argv, launch.env)
    except OSError as exc:
        raise ImageError(f"cannot start {launch.executable}: {exc}") from None
    return 1  # not reached
