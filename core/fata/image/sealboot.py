"""The first code an image's process runs: an import system that executes only verified bytes.

``fata run`` (``run.py``) starts the interpreter as ``python -X frozen_modules=on -S -s -B
-P -c <stub> <fd> ARGS...``, where the stub runs this module's code, marshalled by the
parent into a sealed ``memfd`` (``F_SEAL_WRITE``: nobody can change it), and calls
:func:`boot`; so nothing on disk runs before it.  ``<fd>`` is another sealed memfd,
written by the parent after it checked the manifest's signature in this run.  It holds the
image's extraction directory, the path and SHA-256 of every member, and the numbers of two
more sealed memfds:

- the image's own SHA-256 extension module (``_hashlib``, else ``_sha256``), whose bytes the
  parent checked against the manifest, loaded from that memfd: the hash the seal relies on
  is itself a verified member;
- a stored zip of the three modules the interpreter imports before any Python code runs
  (``encodings``, ``encodings.aliases``, ``encodings.utf_8``), found through ``PYTHONPATH``,
  again with bytes the parent checked.

Then :class:`SealedFinder` replaces the path finder on ``sys.meta_path``.  Every module (and
``get_data``) is read from the extraction into memory, its length and SHA-256 compared with
the manifest, and executed from *those* bytes: bytecode is unmarshalled from the buffer that
was hashed, an extension module is written to a private ``memfd`` and ``dlopen``ed from there.
A file changed between the hash and its use therefore changes nothing: there is no window
between check and use.  A member that differs is refused with :class:`SealBroken` naming it
(and the record that let ``fata run`` skip full verification is removed, so the next run
verifies the image again and repairs the extraction).  A module that is not a member is not
found at all; the image's main adds the finder that says so.

Threat model: the extraction (``$XDG_CACHE_HOME/fata/images/<digest>/``, read-only, owned
by the user) may be changed by anything between two runs, or during a run, and no changed
module is executed.  The baked data under ``data/`` is hashed here before the appliance
starts, and the KV device (``fata.platform.kv_dir``) reads it through :meth:`SealedFinder.read`
during the run, so a data file changed meanwhile is refused, never served.  Not covered:
a process of the same user that attaches to this one (``ptrace``, ``/proc/PID/mem``, or
writing this process's private memfds through ``/proc/PID/fd``); nothing in user space can
stop that.  A self-contained image runs on its own interpreter (``interp/``: binary,
libpython, libraries, loader), which ``run.py`` hashes against the manifest just before the
``execve``; the kernel and the loader then map those files by path, so a change in the
window between that check and the mapping is not caught (see ``run.py``).  An image built
without its own interpreter runs on the host's binary and libraries, trusted as the ``fata``
command that starts the image is.

This module imports only built-in and frozen modules, since nothing else may be trusted
before it has run.  Importing it is harmless; :func:`boot` does the work.
"""

import _frozen_importlib as _bootstrap
import _frozen_importlib_external as _external
import _imp
import _io
import marshal
import posix
import sys

_SEAL_ZIP_MODULES = ("encodings", "encodings.aliases", "encodings.utf_8")


class SealBroken(Exception):
    """A member of the extraction differs from the image's signed manifest.

    Not an ``ImportError``: the many ``try: import _accelerator / except ImportError``
    fallbacks must not swallow it and carry on without the module, which would hide the
    damage; the run stops instead, naming the member."""


class SealedFinder:
    """Finds modules among the image's members, with loaders that check every byte."""

    def __init__(self, root: str, lib: str, table: dict, sha256, record: str) -> None:
        self.root = root
        self.table = table  # member path -> (size, sha256 hex)
        self.sha256 = sha256
        self.record = record
        self.bases = (f"{root}/{lib}", f"{root}/{lib}/lib-dynload")
        self.dirs = set()
        for name in table:
            parts = name.split("/")
            for i in range(1, len(parts)):
                self.dirs.add("/".join(parts[:i]))
        self.suffixes = [(s, True) for s in _imp.extension_suffixes()] + [(".pyc", False)]
        self.memfds: list = []  # kept open: dlopen knows each library by its /proc path

    def find_spec(self, name, path=None, target=None):
        """The spec of ``name`` if it is a member under ``path`` (or the image's library)."""
        tail = name.rpartition(".")[2]
        portions = []
        for base in self.bases if path is None else path:
            if not base.startswith(self.root + "/"):
                continue
            rel = f"{base[len(self.root) + 1:]}/{tail}"
            if rel in self.dirs:
                for suffix, ext in self.suffixes:
                    member = f"{rel}/__init__{suffix}"
                    if member in self.table:
                        return self._spec(name, member, ext, [f"{self.root}/{rel}"])
            for suffix, ext in self.suffixes:
                member = rel + suffix
                if member in self.table:
                    return self._spec(name, member, ext, None)
            if rel in self.dirs:
                portions.append(f"{self.root}/{rel}")
        if portions:
            spec = _bootstrap.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = portions
            return spec
        return None

    def _spec(self, name, member, extension, locations):
        path = f"{self.root}/{member}"
        loader = (VerifiedExtensionLoader if extension else VerifiedBytecodeLoader)(name, path)
        loader.finder = self
        if locations is None:
            return _external.spec_from_file_location(name, path, loader=loader)
        return _external.spec_from_file_location(name, path, loader=loader,
                                                 submodule_search_locations=locations)

    def invalidate_caches(self) -> None:
        """Nothing cached can go stale: the manifest does not change."""

    def read(self, path: str) -> bytes:
        """The bytes of the member at ``path``, checked against the manifest; else an
        ``OSError`` (not a member) or :class:`SealBroken` (a member that differs)."""
        member = path[len(self.root) + 1:] if path.startswith(self.root + "/") else None
        entry = self.table.get(member) if member is not None else None
        if entry is None:
            raise OSError(2, f"{path} is not a member of this image", path)
        with _io.open_code(path) as handle:
            data = handle.read()
        size, digest = entry
        if len(data) != size or self.sha256(data).hexdigest() != digest:
            self.broken()
            raise SealBroken(
                f"{member} in the extracted image {self.root} differs from the image's "
                f"signed manifest (sha256 {self.sha256(data).hexdigest()[:16]}..., expected "
                f"{digest[:16]}...): refused; the next `fata run` verifies the image again "
                f"and re-extracts it")
        return data

    def broken(self) -> None:
        """Forget that this extraction was verified, so the next run repairs it."""
        try:
            posix.unlink(self.record)
        except OSError:
            pass

    def memfd_copy(self, name: str, data: bytes) -> str:
        """A private in-memory file holding ``data``; its ``/proc/self/fd`` path."""
        fd = posix.memfd_create(name, 1)  # MFD_CLOEXEC
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
        self.memfds.append(fd)
        return f"/proc/self/fd/{fd}"


class VerifiedBytecodeLoader(_external.SourcelessFileLoader):
    """Sourceless bytecode whose file bytes are checked before they are unmarshalled."""

    finder: SealedFinder

    def get_data(self, path):
        """The verified bytes of a member (bytecode, or data next to a module)."""
        return self.finder.read(path)


class VerifiedExtensionLoader(_external.ExtensionFileLoader):
    """An extension module ``dlopen``ed from a memfd holding its verified bytes."""

    finder: SealedFinder

    def create_module(self, spec):
        """Load the checked copy; the module still names its member as ``__file__``."""
        data = self.finder.read(self.path)
        shadow = _bootstrap.ModuleSpec(spec.name, self, origin=self.finder.memfd_copy(
            spec.name, data))
        module = _bootstrap._call_with_frames_removed(_imp.create_dynamic, shadow)
        module.__file__ = self.path
        return module

    def get_data(self, path):
        """The verified bytes of a member."""
        return self.finder.read(path)


def _read_fd(fd: int) -> bytes:
    chunks = []
    offset = 0
    while True:
        chunk = posix.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def parse_table(text: str) -> tuple[dict, dict]:
    """(header fields, {member: (size, sha256)}) from the seal table ``run.py`` writes."""
    header: dict = {}
    table: dict = {}
    for line in text.split("\n"):
        if not line:
            continue
        kind, _, rest = line.partition("\t")
        if kind == "M":
            digest, size, member = rest.split("\t", 2)
            table[member] = (int(size), digest)
        else:
            header[kind] = rest
    return header, table


def _load_extension(name: str, fd_path: str, path: str, finder: SealedFinder):
    loader = VerifiedExtensionLoader(name, path)
    loader.finder = finder
    module = _imp.create_dynamic(_bootstrap.ModuleSpec(name, loader, origin=fd_path))
    _imp.exec_dynamic(module)
    module.__file__ = path
    module.__spec__ = _external.spec_from_file_location(name, path, loader=loader)
    module.__loader__ = loader
    sys.modules[name] = module
    return module


def boot() -> None:
    """Seal the import system to the image and run its main as ``__main__``."""
    table_fd = int(sys.argv.pop(1))
    header, table = parse_table(_read_fd(table_fd).decode("utf-8"))
    posix.close(table_fd)
    root, lib, main = header["root"], header["lib"], header["main"]
    for fd in header["fds"].split():  # not for what the appliance may start
        posix.set_inheritable(int(fd), False)
    zip_path = header["zip"]
    for name, mod in list(sys.modules.items()):
        origin = getattr(getattr(mod, "__spec__", None), "origin", None)
        if origin not in (None, "built-in", "frozen") and not origin.startswith(zip_path + "/"):
            sys.stderr.write(f"fata: module {name} was imported from {origin} before the "
                             f"seal, not from the verified start-up modules: refused\n")
            raise SystemExit(1)

    hash_name, hash_fd, hash_member = header["hash"].split("\t", 2)
    finder = SealedFinder(root, lib, table, None, header["record"])
    if hash_name in sys.builtin_module_names:
        module = _imp.create_builtin(_bootstrap.ModuleSpec(hash_name, None, origin="built-in"))
    else:
        module = _load_extension(hash_name, f"/proc/self/fd/{hash_fd}",
                                 f"{root}/{hash_member}", finder)
        finder.memfds.append(int(hash_fd))
        if not hash_member:  # the interpreter's own: not for the image's imports
            del sys.modules[hash_name]
    finder.sha256 = module.openssl_sha256 if hash_name == "_hashlib" else module.sha256

    # The start-up modules came from the sealed zip: give them their members' names and
    # let their submodules come through the finder.
    if zip_path in sys.path:
        sys.path.remove(zip_path)
    sys.path_importer_cache.pop(zip_path, None)
    for name in _SEAL_ZIP_MODULES:
        mod = sys.modules.get(name)
        spec = getattr(mod, "__spec__", None)
        if spec is None or not (spec.origin or "").startswith(zip_path + "/"):
            continue
        origin = f"{root}/{lib}/{spec.origin[len(zip_path) + 1:]}"
        spec.origin = mod.__file__ = origin
        if spec.submodule_search_locations is not None:
            location = origin.rpartition("/")[0]
            spec.submodule_search_locations[:] = [location]
            mod.__path__ = [location]

    sys.meta_path[:] = [f for f in sys.meta_path if f is not _external.PathFinder]
    sys.meta_path.append(finder)
    sys.path[:] = list(finder.bases)

    main_path = f"{root}/{main}"
    try:
        # The baked data is read by the KV device with ordinary file reads: check it here,
        # before anything of the appliance runs.
        for member in table:
            if member.startswith("data/"):
                finder.read(f"{root}/{member}")
        data = finder.read(main_path)
    except (SealBroken, OSError) as exc:
        sys.stderr.write(f"fata: {exc}\n")
        raise SystemExit(1) from None
    if data[:4] != _external.MAGIC_NUMBER:
        sys.stderr.write(f"fata: {main} is not bytecode for this Python\n")
        raise SystemExit(1)
    code = marshal.loads(memoryview(data)[16:])
    sys.argv[0] = main_path
    namespace = sys.modules["__main__"].__dict__
    namespace["__file__"] = main_path
    namespace["__cached__"] = None
    try:
        exec(code, namespace)
    except SealBroken as exc:
        sys.stderr.write(f"fata: {exc}\n")
        raise SystemExit(1) from None
