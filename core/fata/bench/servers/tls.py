"""A TLS test server for external peers (openssl s_client, curl, tlsfuzzer, ``fata bench tls``):

    python -m fata.bench.servers.tls --cert FILE --key FILE [--port N] [--echo]

It answers ``GET /`` with an HTTP/1.0 200 page, or in echo mode returns what it reads.
Host sockets come through ``fata.platform.socket_stack``'s ``SocketFlow``; TLS
is ``fata.tls``, given the Unix platform's random source and clock as an appliance would be
given its ``Random`` and ``Clock`` devices.

It lives with the benchmark tools, not in ``fata.tls``: it is a host program for tests and
benchmarks, and the library an appliance image carries holds only the engine and the adapter.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from fata.platform.socket_stack import SocketFlow, start_flow_server
from fata.platform.unix import UnixClock, UnixRandom
from fata.tls.certs import CertifiedKey
from fata.tls.config import TLSConfig
from fata.tls.flow import TLSHandshakeError, accept
from fata.tls.suites import SUITES, TLS12, TLS13

PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>fata.tls</title></head>"
    b"<body><h1>Hello from fata.tls</h1></body></html>\n"
)


WRITE_CHUNK = 1 << 18


def _head(length: int) -> bytes:
    return (
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def http_response(body: bytes) -> bytes:
    return _head(len(body)) + body


async def serve_connection(
    flow: SocketFlow,
    config: TLSConfig,
    clock: Callable[[], float],
    echo: bool,
    files: dict[str, bytes] | None = None,
    verbose: bool = False,
) -> None:
    try:
        tls = await accept(flow, config, clock=clock)
        if echo:
            while True:
                data = await tls.read()
                if not data:
                    break
                await tls.write(data)
        else:
            request = b""
            while b"\r\n\r\n" not in request and b"\n\n" not in request and len(request) < 65536:
                data = await tls.read()
                if not data:
                    break
                request += data
            parts = request.split(b" ", 2)
            path = parts[1].decode("latin-1") if len(parts) == 3 else "/"
            body = (files or {}).get(path, PAGE)
            if len(body) <= WRITE_CHUNK:
                await tls.write(http_response(body))  # one record, as test suites expect
            else:
                await tls.write(_head(len(body)))
                view = memoryview(body)
                for i in range(0, len(body), WRITE_CHUNK):
                    await tls.write(view[i : i + WRITE_CHUNK])
        await tls.close()
    except TLSHandshakeError as exc:
        if verbose:
            print(f"{flow.peer[0]}:{flow.peer[1]} {exc}", file=sys.stderr, flush=True)
        flow.abort()
    except (ConnectionError, OSError):
        flow.abort()


def build_config(args: argparse.Namespace) -> TLSConfig:
    certs = [CertifiedKey.from_files(c, k) for c, k in zip(args.cert, args.key, strict=True)]
    cfg = TLSConfig(random=UnixRandom().bytes, certificates=certs, alpn_protocols=args.alpn or [])
    if args.tls12_only:
        cfg.min_version = cfg.max_version = TLS12
    if args.tls13_only:
        cfg.min_version = TLS13
    if args.ciphers:
        wanted = args.ciphers.split(":")
        cfg.cipher_suites = tuple(
            c for c, s in SUITES.items() if s.name in wanted or args.ciphers == "all"
        )
        if not cfg.cipher_suites:
            raise SystemExit(f"no known suite in {args.ciphers!r}")
    if args.groups:
        from fata.tls.groups import GROUP_NAMES

        by_name = {v: k for k, v in GROUP_NAMES.items()}
        unknown = [g for g in args.groups.split(":") if g not in by_name]
        if unknown:
            raise SystemExit(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
        cfg.groups = tuple(by_name[g] for g in args.groups.split(":"))
    cfg.session_tickets = args.tickets
    return cfg


def load_docroot(docroot: str | None) -> dict[str, bytes]:
    """Files served by path (``GET /name``), read once at start: the content is immutable."""
    if not docroot:
        return {}
    root = Path(docroot)
    return {"/" + p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}


async def run(args: argparse.Namespace) -> None:
    config = build_config(args)
    clock = UnixClock().time
    files = load_docroot(args.docroot)

    async def handler(flow: SocketFlow) -> None:
        await serve_connection(flow, config, clock, args.echo, files, args.verbose)

    sock = socket.create_server((args.host, args.port), backlog=1024)
    sock.setblocking(False)
    server = await start_flow_server(handler, sock, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {args.host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fata.bench.servers.tls", description=__doc__)
    p.add_argument("--cert", action="append", required=True, help="PEM chain (repeatable)")
    p.add_argument("--key", action="append", required=True, help="PEM key (one per --cert)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4433)
    p.add_argument("--echo", action="store_true", help="return what is read")
    p.add_argument("--alpn", action="append", help="ALPN protocol to accept (repeatable)")
    p.add_argument("--tls12-only", action="store_true")
    p.add_argument("--tls13-only", action="store_true")
    p.add_argument("--ciphers", help="colon-separated suite names, or 'all' (adds CCM_8)")
    p.add_argument("--groups", help="colon-separated groups (x25519:secp256r1:secp384r1)")
    p.add_argument("--docroot", help="also serve the files of this directory by name")
    p.add_argument("--verbose", action="store_true", help="log failed handshakes to stderr")
    p.add_argument("--tickets", type=int, default=2, help="session tickets per handshake")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
