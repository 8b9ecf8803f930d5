"""The configuration DSL: an appliance's ``config.py``, the analogue of Mirage's ``config.ml``.

A ``config.py`` declares what the appliance is and needs, never how it is provided::

    from fata.config import Appliance, arg, clock, console, kv_ro, lifecycle, stack

    appliance = Appliance(
        name="dns", version="0.1.0", entry="fata_dns.unikernel:start",
        devices={"stack": stack(), "data": kv_ro("data"), "clock": clock(),
                 "console": console(), "lifecycle": lifecycle()},
        args=[arg("port", type=int, default=53, help="UDP and TCP port")],
        include=["dns.rdtypes"],
    )

Two kinds of arguments, as in MirageOS 4.5:

- *configure-time keys* (``key(...)``, plus the built-in ``net`` key of every appliance
  with a network stack and the ``loop`` key, ``asyncio`` or ``uvloop``) are fixed by
  ``fata build``: they change what goes into the image (``--net direct`` brings Fata's own
  TCP/IP, ``--net socket`` leaves it out; ``--key loop=uvloop`` brings uvloop);
- *runtime arguments* (``arg(...)``) are typed options of the running image, with
  ``--help``, defaults and validation.

Every mistake is reported as a :class:`ConfigError` naming the file and line of the
declaration at fault, so that ``fata build`` prints one line instead of a traceback.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Appliance",
    "ArgSpec",
    "ConfigError",
    "DeviceSpec",
    "KeySpec",
    "Variant",
    "arg",
    "block",
    "clock",
    "console",
    "key",
    "kv_ro",
    "kv_runtime",
    "lifecycle",
    "load",
    "local_sockets",
    "netif",
    "random",
    "stack",
    "when",
    "xen",
]

CONFIG_FILE = "config.py"
NET_CHOICES = ("socket", "direct")
LOOP_CHOICES = ("asyncio", "uvloop")
BUILTIN_KEYS = ("net", "loop")

_ARG_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PORT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")  # a netif, block or kv_runtime name
_ENTRY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class ConfigError(Exception):
    """A mistake in an appliance's configuration, located at ``file:line`` when known."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


def _caller_origin() -> tuple[str | None, int | None]:
    """The first frame outside this module: where the declaration was written."""
    here = __file__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename != here:
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None, None


@dataclass(frozen=True)
class DeviceSpec:
    """A device the appliance needs; the platform decides how to provide it."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    origin: tuple[str | None, int | None] = (None, None)

    def bake(self) -> dict[str, Any]:
        """The JSON form stored in the image."""
        return {"kind": self.kind, **self.params}


def stack(netifs: list[str] | tuple[str, ...] | None = None) -> DeviceSpec:
    """A network stack (``fata.devices.Stack``): host sockets or Fata's own TCP/IP, by ``--net``.

    ``netifs`` names ``netif()`` devices of this appliance for Fata's own TCP/IP to stand on
    (``--net direct`` only); without them the direct stack has one interface of its own,
    a TAP unless ``fata run --netif`` says otherwise.
    """
    origin = _caller_origin()
    if netifs is None:
        return DeviceSpec("stack", {}, origin)
    if isinstance(netifs, str) or not all(isinstance(n, str) for n in netifs) or not netifs:
        raise ConfigError(f"stack(netifs=...) wants a non-empty list of device names, "
                          f"got {netifs!r}", *origin)
    return DeviceSpec("stack", {"netifs": list(netifs)}, origin)


def local_sockets() -> DeviceSpec:
    """Local stream sockets (``fata.devices.local.LocalSockets``): listening on and
    connecting to names on this machine, Unix-domain sockets on ``unix``."""
    return DeviceSpec("local_sockets", {}, _caller_origin())


def xen() -> DeviceSpec:
    """The Xen control device (``fata.devices.xen.XenControl``): map domains' pages, bind
    event channels; for appliances that are part of the Xen platform (the xenstore daemon,
    backends).  ``fata run --xen-hypervisor PATH`` names the hypervisor on ``unix``."""
    return DeviceSpec("xen", {}, _caller_origin())


def _port_name(what: str, name: str | None, origin: tuple[str | None, int | None]) -> dict[str, Any]:
    if name is None:
        return {}
    if not isinstance(name, str) or not _PORT_RE.match(name):
        raise ConfigError(f"{what}() name {name!r} must be lowercase letters, digits, - or _",
                          *origin)
    return {"name": name}


def netif(name: str | None = None) -> DeviceSpec:
    """A raw Ethernet port (``fata.devices.Netif``), MirageOS's ``netif "0"``.

    ``fata run --netif NAME=tap:IFNAME`` (a TAP Fata creates) or ``--netif NAME=if:IFNAME``
    (an existing interface, through ``AF_PACKET``) says what it is at run time; ``NAME`` is
    ``name``, or the device's key in ``devices`` when not given.
    """
    origin = _caller_origin()
    return DeviceSpec("netif", _port_name("netif", name, origin), origin)


def block(name: str | None = None) -> DeviceSpec:
    """A block device (``fata.devices.Block``: sectors, flush, discard), MirageOS's
    ``Mirage_block``; ``fata run --block NAME=PATH`` gives its backing file at run time."""
    origin = _caller_origin()
    return DeviceSpec("block", _port_name("block", name, origin), origin)


def kv_ro(directory: str, generate: str | None = None) -> DeviceSpec:
    """A read-only key/value store (``fata.devices.KV``) over ``directory`` of the appliance,
    copied into the image at build time.

    ``generate="module:function"`` makes the directory at build time instead: ``fata build``
    imports ``module`` (from the appliance directory) and calls ``function(out, epoch)``
    with an empty directory ``out`` to fill and the build's epoch, and bakes what it wrote
    under ``directory``; nothing of that directory need exist in the source tree.  This is
    for data derived from something else (rendered pages, a development certificate), so
    that the derived bytes are never stale and never committed."""
    origin = _caller_origin()
    if not isinstance(directory, str) or not directory or directory.startswith(("/", "..")):
        raise ConfigError(f"kv_ro() wants a relative directory name, got {directory!r}", *origin)
    params: dict[str, Any] = {"directory": directory}
    if generate is not None:
        if not isinstance(generate, str) or not _ENTRY_RE.match(generate):
            raise ConfigError(f"kv_ro(generate=...) wants 'module:function', got {generate!r}",
                              *origin)
        params["generate"] = generate
    return DeviceSpec("kv_ro", params, origin)


def kv_runtime(name: str | None = None) -> DeviceSpec:
    """A read-only key/value store (``fata.devices.KV``) whose contents ``fata run`` chooses,
    MirageOS's ``generic_kv_ro`` read at run time: on ``unix`` the host directory of
    ``fata run --kv NAME=DIR`` (nothing outside it readable), or without that option the
    host's file system.  ``NAME`` is ``name``, or the device's key in ``devices``.

    Unlike ``kv_ro``'s, its contents are not in the image, are not covered by the seal and
    may change while the appliance runs: it reads them when it chooses (at start, on reload).
    """
    origin = _caller_origin()
    return DeviceSpec("kv_runtime", _port_name("kv_runtime", name, origin), origin)


def clock() -> DeviceSpec:
    """Monotonic and wall-clock time (``fata.devices.Clock``)."""
    return DeviceSpec("clock", {}, _caller_origin())


def random() -> DeviceSpec:
    """Secure random bytes (``fata.devices.Random``)."""
    return DeviceSpec("random", {}, _caller_origin())


def console() -> DeviceSpec:
    """The log (``fata.devices.Console``)."""
    return DeviceSpec("console", {}, _caller_origin())


def lifecycle() -> DeviceSpec:
    """Stop and reload requests (``fata.devices.Lifecycle``)."""
    return DeviceSpec("lifecycle", {}, _caller_origin())


@dataclass(frozen=True)
class ArgSpec:
    """A runtime argument: the option ``--name`` of the running image."""

    name: str
    type: str
    default: Any
    multiple: bool
    choices: tuple[Any, ...] | None
    help: str
    origin: tuple[str | None, int | None] = (None, None)

    @property
    def option(self) -> str:
        """The command-line spelling, ``--tcp-idle-timeout`` for ``tcp_idle_timeout``."""
        return "--" + self.name.replace("_", "-")

    def bake(self) -> dict[str, Any]:
        """The JSON form stored in the image."""
        return {
            "name": self.name,
            "type": self.type,
            "default": list(self.default) if self.multiple else self.default,
            "multiple": self.multiple,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
        }


def arg(
    name: str,
    *,
    type: type = str,
    default: Any = None,
    multiple: bool = False,
    choices: list[Any] | tuple[Any, ...] | None = None,
    help: str = "",
) -> ArgSpec:
    """Declare a runtime argument (``--name`` on ``fata run IMAGE -- ...``)."""
    origin = _caller_origin()
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"argument name {name!r} must be lower_snake_case", *origin)
    type_name = getattr(type, "__name__", None)
    if type_name not in _ARG_TYPES or _ARG_TYPES[type_name] is not type:
        raise ConfigError(f"argument {name!r}: type must be one of str, int, float, bool", *origin)
    if multiple:
        default = tuple(default or ())
        values = default
    else:
        values = () if default is None else (default,)
    for value in values:
        if not isinstance(value, type) or (type is int and isinstance(value, bool)):
            raise ConfigError(
                f"argument {name!r}: default {value!r} is not of type {type_name}", *origin
            )
    if choices is not None:
        choices = tuple(choices)
        for value in values:
            if value not in choices:
                raise ConfigError(f"argument {name!r}: default {value!r} not in {choices}", *origin)
    if type is bool and multiple:
        raise ConfigError(f"argument {name!r}: a bool argument cannot be repeated", *origin)
    return ArgSpec(name, type_name, default, multiple, choices, help, origin)


@dataclass(frozen=True)
class KeySpec:
    """A configure-time key, chosen at ``fata build`` and baked into the image."""

    name: str
    choices: tuple[str, ...]
    default: str
    help: str
    origin: tuple[str | None, int | None] = (None, None)


def key(name: str, *, choices: list[str], default: str, help: str = "") -> KeySpec:
    """Declare a configure-time key (``fata build --key name=value``)."""
    origin = _caller_origin()
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in BUILTIN_KEYS:
        raise ConfigError(
            f"key name {name!r} must be lower_snake_case and not one of {', '.join(BUILTIN_KEYS)}",
            *origin,
        )
    choices_t = tuple(choices)
    if not choices_t or not all(isinstance(c, str) for c in choices_t):
        raise ConfigError(f"key {name!r}: choices must be a non-empty list of strings", *origin)
    if default not in choices_t:
        raise ConfigError(f"key {name!r}: default {default!r} not in {choices_t}", *origin)
    return KeySpec(name, choices_t, default, help, origin)


@dataclass(frozen=True)
class Variant:
    """What one value of a configure-time key changes in the appliance (``when(...)``)."""

    key: str
    value: str
    entry: str | None
    devices: dict[str, DeviceSpec | None]
    args: tuple[ArgSpec, ...] | None
    include: tuple[str, ...]
    origin: tuple[str | None, int | None] = (None, None)


def when(key: str, value: str, *, entry: str | None = None,
         devices: dict[str, DeviceSpec | None] | None = None,
         args: list[ArgSpec] | None = None, include: list[str] | tuple[str, ...] = ()
         ) -> Variant:
    """For images built with ``--key KEY=VALUE``: another ``entry``; ``devices`` added or
    replaced (``None`` removes one); ``args`` instead of the appliance's; more ``include``.

    MirageOS's ``match_impl`` on a key, for a whole appliance: the image holds only what
    the chosen value needs (another entry module brings another closure), so one appliance
    directory can build different roles, or a number of ports fixed at build time.
    Variants apply in their order, each whose key has its value.
    """
    origin = _caller_origin()
    if entry is not None and (not isinstance(entry, str) or not _ENTRY_RE.match(entry)):
        raise ConfigError(f"when({key!r}, {value!r}): entry {entry!r} must look like "
                          "'package.module:function'", *origin)
    for name, spec in (devices or {}).items():
        if spec is not None and not isinstance(spec, DeviceSpec):
            raise ConfigError(f"when({key!r}, {value!r}): device {name!r} is {spec!r}, not a "
                              "device (or None to remove it)", *origin)
    return Variant(key, value, entry, dict(devices or {}),
                   None if args is None else tuple(args), tuple(include), origin)


class Appliance:
    """What an appliance is: its name, entry point, devices, keys and arguments."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        entry: str,
        devices: dict[str, DeviceSpec],
        args: list[ArgSpec] | tuple[ArgSpec, ...] = (),
        keys: list[KeySpec] | tuple[KeySpec, ...] = (),
        include: list[str] | tuple[str, ...] = (),
        description: str = "",
        loop: str = "asyncio",
        variants: list[Variant] | tuple[Variant, ...] = (),
    ) -> None:
        origin = _caller_origin()
        self.origin = origin
        if loop not in LOOP_CHOICES:
            raise ConfigError(f"loop {loop!r} is not one of {', '.join(LOOP_CHOICES)}", *origin)
        self.loop = loop  # the default of the ``loop`` key (a TCP server may prefer uvloop)
        if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_-]*$", name):
            raise ConfigError(f"appliance name {name!r} must be lowercase letters, digits, - or _", *origin)
        if not isinstance(version, str) or not version:
            raise ConfigError("appliance version must be a non-empty string", *origin)
        if not isinstance(entry, str) or not _ENTRY_RE.match(entry):
            raise ConfigError(f"entry {entry!r} must look like 'package.module:function'", *origin)
        if not isinstance(devices, dict):
            raise ConfigError("devices must be a dict of name -> device", *origin)
        for dev_name, spec in devices.items():
            if not isinstance(spec, DeviceSpec):
                raise ConfigError(
                    f"device {dev_name!r} is {spec!r}, not a device (use stack(), kv_ro(...), ...)",
                    *origin,
                )
            if not isinstance(dev_name, str) or not _NAME_RE.match(dev_name) or dev_name == "args":
                raise ConfigError(f"device name {dev_name!r} must be lower_snake_case", *spec.origin)
        devices = {n: _named(n, s) for n, s in devices.items()}
        for spec in devices.values():
            for ref in spec.params.get("netifs", ()):
                if ref not in devices or devices[ref].kind != "netif":
                    raise ConfigError(f"stack(netifs=...): {ref!r} is not a netif() device of "
                                      "this appliance", *spec.origin)
        ports = [(s.kind, s.params["name"]) for s in devices.values() if "name" in s.params]
        for kind, port in ports:
            if ports.count((kind, port)) > 1:
                raise ConfigError(f"two {kind} devices are named {port!r}", *origin)
        seen: set[str] = set()
        for spec in args:
            if not isinstance(spec, ArgSpec):
                raise ConfigError(f"{spec!r} is not an argument (use arg(...))", *origin)
            if spec.name in seen:
                raise ConfigError(f"argument {spec.name!r} declared twice", *spec.origin)
            seen.add(spec.name)
        key_names: set[str] = set()
        for spec in keys:
            if not isinstance(spec, KeySpec):
                raise ConfigError(f"{spec!r} is not a key (use key(...))", *origin)
            if spec.name in key_names or spec.name in seen:
                raise ConfigError(f"key {spec.name!r} clashes with another key or argument", *spec.origin)
            key_names.add(spec.name)
        for mod in include:
            if not isinstance(mod, str) or not re.match(r"^[A-Za-z_][\w.]*$", mod):
                raise ConfigError(f"include entry {mod!r} is not a module name", *origin)
        known = {spec.name: spec.choices for spec in keys}
        known.update(loop=LOOP_CHOICES, net=NET_CHOICES)
        for variant in variants:
            if not isinstance(variant, Variant):
                raise ConfigError(f"{variant!r} is not a variant (use when(...))", *origin)
            if variant.key not in known:
                raise ConfigError(f"when({variant.key!r}, ...): no such key", *variant.origin)
            if variant.value not in known[variant.key]:
                raise ConfigError(f"when({variant.key!r}, {variant.value!r}): not one of "
                                  f"{', '.join(known[variant.key])}", *variant.origin)
        self.name = name
        self.version = version
        self.entry = entry
        self.devices = dict(devices)
        self.args = tuple(args)
        self.keys = tuple(keys)
        self.include = tuple(include)
        self.description = description
        self.variants = tuple(variants)
        self.directory: Path | None = None

    def specialise(self, given: dict[str, str]) -> Appliance:
        """The appliance as built with keys ``given``: every matching ``when(...)`` applied
        (checked as the appliance itself is); ``self`` when none matches."""
        keys = self.resolve_keys(given)
        chosen = [v for v in self.variants if keys.get(v.key) == v.value]
        if not chosen:
            return self
        entry, devices, args, include = self.entry, dict(self.devices), self.args, self.include
        for variant in chosen:
            entry = variant.entry or entry
            for name, spec in variant.devices.items():
                if spec is None:
                    devices.pop(name, None)
                else:
                    devices[name] = spec
            args = variant.args if variant.args is not None else args
            include = (*include, *(m for m in variant.include if m not in include))
        try:
            made = Appliance(name=self.name, version=self.version, entry=entry, devices=devices,
                             args=args, keys=self.keys, include=include,
                             description=self.description, loop=self.loop)
        except ConfigError as exc:
            if exc.file == self.origin[0]:  # located at a declaration in config.py
                raise
            raise ConfigError(exc.message, *chosen[-1].origin) from None  # at the variant
        made.origin, made.directory = self.origin, self.directory
        return made

    @property
    def entry_module(self) -> str:
        """The module holding the entry point."""
        return self.entry.split(":", 1)[0]

    @property
    def has_stack(self) -> bool:
        """Whether the appliance uses the network (and so has the ``net`` key)."""
        return any(s.kind == "stack" for s in self.devices.values())

    def resolve_keys(self, given: dict[str, str]) -> dict[str, str]:
        """Configure-time key values: the given ones checked, defaults for the rest."""
        known: dict[str, KeySpec] = {k.name: k for k in self.keys}
        known["loop"] = KeySpec("loop", LOOP_CHOICES, self.loop, "event loop")
        if self.has_stack:
            known["net"] = KeySpec("net", NET_CHOICES, "socket", "network stack")
        for name, value in given.items():
            if name not in known:
                hint = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"appliance {self.name!r} has no key {name!r} (keys: {hint})")
            if value not in known[name].choices:
                raise ConfigError(
                    f"key {name!r}: {value!r} is not one of {', '.join(known[name].choices)}"
                )
        return {name: given.get(name, spec.default) for name, spec in sorted(known.items())}

    def platform_modules(self, keys: dict[str, str]) -> list[str]:
        """The modules that provide this appliance's devices under ``keys`` (sorted, unique)."""
        from fata.platform.registry import provider

        mods = {provider(spec.kind, keys) for spec in self.devices.values()}
        from fata.runtime.loop import LOOP_MODULES

        if keys.get("loop") in LOOP_MODULES:
            mods.add(LOOP_MODULES[keys["loop"]])
        return sorted(mods)

    def bake(self, keys: dict[str, str]) -> dict[str, Any]:
        """The resolved configuration baked into an image: plain JSON data, nothing callable."""
        keys = self.resolve_keys(keys)
        stacks = [s for s in self.devices.values() if s.kind == "stack"]
        for spec in stacks:
            if spec.params.get("netifs") and keys.get("net") != "direct":
                raise ConfigError("a stack over netif() devices is Fata's own TCP/IP: build "
                                  "it with --net direct", *spec.origin)
        own = [s for s in stacks if not s.params.get("netifs")]
        if keys.get("net") == "direct" and len(stacks) > 1 and own:
            raise ConfigError("several direct stacks need a port each: give this one "
                              "stack(netifs=[...])", *own[0].origin)
        claimed = [n for s in stacks for n in s.params.get("netifs", ())]
        for name in claimed:
            if claimed.count(name) > 1:
                raise ConfigError(f"netif {name!r} is given to two stacks", *self.origin)
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "entry": self.entry,
            "keys": keys,
            "devices": {n: s.bake() for n, s in sorted(self.devices.items())},
            "args": [a.bake() for a in self.args],
            "include": list(self.include),
            "platform_modules": self.platform_modules(keys),
        }

    def data_directories(self) -> list[str]:
        """The appliance directories that ``kv_ro`` devices bake into the image."""
        return sorted({s.params["directory"] for s in self.devices.values() if s.kind == "kv_ro"})

    def data_generators(self) -> dict[str, str]:
        """``{directory: "module:function"}`` for the ``kv_ro`` directories made at build
        time (``kv_ro(..., generate=...)``)."""
        return {s.params["directory"]: s.params["generate"] for s in self.devices.values()
                if s.kind == "kv_ro" and "generate" in s.params}


def _named(key: str, spec: DeviceSpec) -> DeviceSpec:
    """A netif, block or run-time KV device's run-time name: its own, or its key in ``devices``."""
    if spec.kind not in ("netif", "block", "kv_runtime") or "name" in spec.params:
        return spec
    if not _PORT_RE.match(key):
        raise ConfigError(f"{spec.kind} device {key!r}: its key is its run-time name, so it "
                          "must be lowercase letters, digits, - or _", *spec.origin)
    return DeviceSpec(spec.kind, {**spec.params, "name": key}, spec.origin)


def load(appliance_dir: str | Path) -> Appliance:
    """Execute ``APPLIANCE_DIR/config.py`` and return its ``appliance``.

    Any error (syntax, exception, wrong declaration) becomes a ``ConfigError`` naming the
    file and line, never a traceback.
    """
    directory = Path(appliance_dir)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not an appliance directory")
    if not path.is_file():
        raise ConfigError(f"no {CONFIG_FILE} in {directory} (is it an appliance directory?)")
    filename = str(path)
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise ConfigError(f"syntax error: {exc.msg}", filename, exc.lineno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", filename) from None
    namespace: dict[str, Any] = {"__file__": filename, "__name__": "fata_config"}
    # The appliance's own package must be importable from its config (for constants).
    sys.path.insert(0, str(directory))
    try:
        exec(code, namespace)
    except ConfigError as exc:
        if exc.file is None:
            exc = ConfigError(exc.message, filename)
        raise exc from None
    except Exception as exc:
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == filename:
                line = frame.lineno
        raise ConfigError(f"{type(exc).__name__}: {exc}", filename, line) from None
    finally:
        try:
            sys.path.remove(str(directory))
        except ValueError:
            pass
    appliance = namespace.get("appliance")
    if not isinstance(appliance, Appliance):
        raise ConfigError("defines no `appliance = Appliance(...)`", filename)
    appliance.directory = directory.resolve()
    generated = appliance.data_generators()
    for data_dir in appliance.data_directories():
        if data_dir not in generated and not (directory / data_dir).is_dir():
            spec = next(s for s in appliance.devices.values() if s.params.get("directory") == data_dir)
            raise ConfigError(f"kv_ro directory {data_dir!r} does not exist in {directory}", *spec.origin)
    return appliance
