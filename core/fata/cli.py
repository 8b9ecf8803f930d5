"""The ``fata`` command: build, run, inspect, verify, new, publish, pull, keygen, bench.

Every user mistake (a bad config.py, a tampered image, a missing appliance) ends in one
line ``fata: <message>`` and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class UsageError(Exception):
    """A command line that cannot be acted on."""


def _parse_keys(net: str | None, pairs: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--key wants NAME=VALUE, got {pair!r}")
        keys[name] = value
    if net is not None:
        keys["net"] = net
    return keys


def cmd_build(ns: argparse.Namespace) -> int:
    from fata import image

    path = image.build(Path(ns.appliance), _parse_keys(ns.net, ns.key),
                       Path(ns.out) if ns.out else None, Path(ns.sign) if ns.sign else None,
                       target=ns.target)
    image.warm(path)
    print(path)
    return 0


def cmd_run(argv: list[str]) -> int:
    from fata import image

    before, after = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="fata run", add_help=False,
        description="Run an image, or an appliance directory built on the fly. Platform options "
        "(e.g. --netif, --ipv4 for --net direct) pass through; appliance arguments follow `--`.",
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and, given a "
                        "target, its runtime and platform options")
    parser.add_argument("target", nargs="?", help="an image file or an appliance directory")
    parser.add_argument("--net", choices=["socket", "direct"], help="network stack (directories; "
                        "for an image it must match the one it was built with)")
    parser.add_argument("--key", action="append", default=[], metavar="NAME=VALUE",
                        help="configure-time key when building a directory")
    parser.add_argument("--trust", action="append", default=[], metavar="KEY.pub",
                        help="also trust this public key")
    parser.add_argument("--xen-dir", metavar="DIR", help="for a --target xen image: the Xen "
                        "platform to join, or to start (default /run/fata/xen)")
    ns, platform_argv = parser.parse_known_args(before)
    if ns.help:
        print(parser.format_help())
        if ns.target is None:
            return 0
        print("The image's own runtime and platform options:\n")
        sys.stdout.flush()
        platform_argv = ["--help"]
    elif ns.target is None:
        raise UsageError("fata run: which image or appliance directory? (fata run --help)")
    target = Path(ns.target)
    trust = [Path(t) for t in ns.trust]
    if target.is_dir():
        keys = _parse_keys(ns.net, ns.key)
        path = image.build(target, keys, out_dir=_cache_dir(), log=lambda *_a, **_k: None)
    elif target.is_file():
        path = target
        if ns.net is not None:
            baked_net = _peek_manifest(path).get("keys", {}).get("net")
            if baked_net != ns.net:
                raise UsageError(f"{path} was built with --net {baked_net}; rebuild it with "
                                 f"`fata build ... --net {ns.net}`")
    else:
        raise UsageError(f"{target}: no such image or appliance directory")
    if _peek_manifest(path).get("target") == "xen":
        from fata.platform.xen_launch import DEFAULT_DIR, run_guest

        return run_guest(path, [*platform_argv, "--", *after], trust,
                         Path(ns.xen_dir) if ns.xen_dir else DEFAULT_DIR)
    return image.run_image(path, [*platform_argv, "--", *after], trust)


def _peek_manifest(path: Path) -> dict:
    """The manifest as stored, unverified: only to check options early (run verifies it all)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("MANIFEST.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}


def _cache_dir() -> Path:
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fata" / "built"


def cmd_ps(ns: argparse.Namespace) -> int:
    from fata.platform.xen_launch import DEFAULT_DIR, list_domains

    print(f"{'ID':>4}  NAME")
    for domid, name in list_domains(Path(ns.xen_dir) if ns.xen_dir else DEFAULT_DIR):
        print(f"{domid:>4}  {name}")
    return 0


def cmd_inspect(ns: argparse.Namespace) -> int:
    from fata import image

    info = image.inspect(Path(ns.image))
    print(json.dumps(info, indent=2, sort_keys=True) if ns.json else image.format_inspect(info))
    return 0


def cmd_verify(ns: argparse.Namespace) -> int:
    from fata import image

    manifest = image.verify(Path(ns.image), Path(ns.key) if ns.key else None)
    print(f"{ns.image}: OK ({manifest.get('name')} {manifest.get('version')}, "
          f"key {manifest.get('key_id', '?')})")
    return 0


def cmd_new(ns: argparse.Namespace) -> int:
    from fata import image

    source = Path(ns.source)
    if not source.is_dir() and (REPO_ROOT / "appliances" / ns.source).is_dir():
        source = REPO_ROOT / "appliances" / ns.source
    print(image.new(ns.name, source, Path(ns.dir) if ns.dir else None))
    return 0


def cmd_publish(ns: argparse.Namespace) -> int:
    from fata import image

    print(image.publish([Path(p) for p in ns.images], Path(ns.index)))
    return 0


def cmd_pull(ns: argparse.Namespace) -> int:
    from fata import image

    trust = [Path(t) for t in ns.trust]
    path = image.pull(ns.ref, ns.index, Path(ns.out) if ns.out else None, trust)
    image.warm(path, trust)
    print(path)
    return 0


def cmd_keygen(ns: argparse.Namespace) -> int:
    from fata import image

    private, public = image.keygen(Path(ns.out))
    print(f"private key: {private}\npublic key:  {public}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        raise UsageError(f"usage: fata bench NAME [--quick] [harness options]; harnesses: "
                         f"{', '.join(_bench_names()) or 'none'}")
    name, rest = argv[0], argv[1:]
    harness = REPO_ROOT / "appliances" / name / "bench" / "harness.py"
    if not harness.is_file():  # a stub domain's harness by its service's name: xenstore
        harness = REPO_ROOT / "appliances" / f"{name}_stub" / "bench" / "harness.py"
    if harness.is_file():
        spec = importlib.util.spec_from_file_location(f"fata_bench_{name}", harness)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(f"fata.bench.{name}")
        except ModuleNotFoundError:
            raise UsageError(f"no benchmark harness named {name!r}") from None
    return int(module.main(rest) or 0)


def _bench_names() -> list[str]:
    """Harnesses available: appliances with bench/harness.py, and fata.bench modules."""
    names = {p.parent.parent.name for p in (REPO_ROOT / "appliances").glob("*/bench/harness.py")}
    bench_dir = Path(__file__).resolve().parent / "bench"
    names |= {p.stem for p in bench_dir.glob("*.py") if p.stem not in ("__init__", "report")}
    return sorted(names)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand but ``run`` and ``bench`` (which pass options on)."""
    from fata import __version__

    parser = argparse.ArgumentParser(prog="fata", description="Build, run and ship sealed appliances.")
    parser.add_argument("--version", action="version", version=f"fata {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("build", help="build a sealed, signed image of an appliance")
    p.add_argument("appliance")
    p.add_argument("--target", choices=["unix", "xen"], default="unix",
                   help="target platform: unix, or xen (a guest domain on netfront, run by "
                        "`fata run` as an unprivileged process behind netback)")
    p.add_argument("--net", choices=["socket", "direct"], default=None)
    p.add_argument("--key", action="append", default=[], metavar="NAME=VALUE",
                   help="a configure-time key of the appliance")
    p.add_argument("--out", help="output directory (default images/dist/)")
    p.add_argument("--sign", metavar="KEY", help="ed25519 private key (default: development key)")
    p.set_defaults(func=cmd_build)
    sub.add_parser("run", help="run an image or appliance directory (see `fata run --help`)")
    p = sub.add_parser("inspect", help="show an image's manifest and size breakdown")
    p.add_argument("image")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("verify", help="exit 0 only for an intact, correctly signed image")
    p.add_argument("image")
    p.add_argument("--key", metavar="KEY.pub")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("new", help="fork an appliance as a renamed, runnable copy")
    p.add_argument("name")
    p.add_argument("--from", dest="source", required=True, metavar="APPLIANCE")
    p.add_argument("--dir")
    p.set_defaults(func=cmd_new)
    p = sub.add_parser("publish", help="write index.json for images")
    p.add_argument("images", nargs="+")
    p.add_argument("--index", required=True, metavar="DIR")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("pull", help="download and verify a published image")
    p.add_argument("ref", metavar="NAME[:VERSION]")
    p.add_argument("--index", required=True, metavar="URL")
    p.add_argument("--out")
    p.add_argument("--trust", action="append", default=[], metavar="KEY.pub")
    p.set_defaults(func=cmd_pull)
    p = sub.add_parser("keygen", help="make an ed25519 signing key pair")
    p.add_argument("--out", default="fata-signing-key", help="private key path (public: PATH.pub)")
    p.set_defaults(func=cmd_keygen)
    sub.add_parser("bench", help="benchmark against the real peers: fata bench NAME [--quick]")
    p = sub.add_parser("ps", help="list the domains of the running Xen platform")
    p.add_argument("--xen-dir", default=None, metavar="DIR",
                   help="the platform's directory (default /run/fata/xen)")
    p.set_defaults(func=cmd_ps)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fata`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "run":
            return cmd_run(argv[1:])
        if argv and argv[0] == "bench":
            return cmd_bench(argv[1:])
        ns = build_parser().parse_args(argv)
        if not getattr(ns, "func", None):
            build_parser().print_help()
            return 2
        return ns.func(ns)
    except UsageError as exc:
        print(f"fata: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fata inspect IMAGE | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # the image package's errors, PlatformError, OSError
        # Matched by name so that `fata run IMAGE` need not import the config machinery.
        if type(exc).__name__ in ("ConfigError", "ImageError", "PlatformError") or isinstance(
            exc, OSError
        ):
            print(f"fata: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
