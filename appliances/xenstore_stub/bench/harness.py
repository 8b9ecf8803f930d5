"""``fata bench xenstore``: operations per second of the xenstore daemon over its Unix
socket, with 1 and 16 concurrent clients, and watch-event latency.

The daemon (``fata run appliances/xenstore_stub``, on a fresh ``--store``) is pinned to one
core, the load generator (this process: one asyncio client per connection, speaking
``fata.xen.xs_wire``, each with one request in flight, as libxenstore's clients are) to
another.  Operations: ``read`` of one node, durable ``write`` of per-client nodes,
``directory`` of a node with 100 children, ``tx10`` (start, ten writes, commit: counted in
transactions), and ``watch`` (a client watching a node, another writing it: median time
from the write's send to the event's arrival).  Every answer is checked (an error answer
marks the row wrong).

Debian's C ``xenstored`` and ``oxenstored`` (xen-utils-4.17) are rows too, each saying why
it did not run: without a hypervisor the C daemon starts only with ``-D`` (no dom0
initialisation) and then dies of SIGSEGV on the first request (a READ of ``/`` included:
it has no dom0 to account the connection to), and ``oxenstored`` needs Xenctrl's
``/dev/xen/privcmd`` at start (its first failure here, ``setrlimit`` of RLIMIT_NOFILE to
``nr_open``, can be got past by bind-mounting ``nr_open`` in a mount namespace).

    fata bench xenstore [--quick] [--duration S] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
if str(REPO / "core") not in sys.path:
    sys.path.insert(0, str(REPO / "core"))

from fata.bench import report  # noqa: E402
from fata.xen.xs_wire import Message, MessageReader, Op  # noqa: E402

DNS_BENCH = REPO / "appliances" / "dns" / "bench"
OPS = ("read", "write", "directory", "tx10", "watch")
TARGETS = {"read": 20_000, "write": 5_000}  # ops/s with 16 clients (the issue's)


class Client:
    """One connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.wire = MessageReader()
        self.queue: list[Message] = []
        self.req = 0

    async def next(self) -> Message:
        while not self.queue:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self.queue += list(self.wire.feed(data))
        return self.queue.pop(0)

    async def ask(self, op: int, payload: bytes, tx: int = 0) -> Message:
        self.req += 1
        self.writer.write(Message(op, self.req, tx, payload).encode())
        while True:
            msg = await self.next()
            if msg.op != Op.WATCH_EVENT:
                break
        if msg.op == Op.ERROR:
            raise RuntimeError(f"{Op(op).name} answered {msg.payload!r}")
        return msg


async def _connect(path: str) -> Client:
    return Client(*await asyncio.open_unix_connection(path))


async def _run_op(path: str, op: str, clients: int, duration: float) -> float:
    """Operations per second of ``op`` with ``clients`` connections for ``duration``."""
    conns = [await _connect(path) for _ in range(clients)]
    setup = conns[0]
    await setup.ask(Op.WRITE, b"/bench/key\0value")
    for i in range(100):
        await setup.ask(Op.WRITE, b"/bench/dir/child-%03d\0v" % i)
    for n in range(clients):  # each client's transaction nodes exist: no conflicts by design
        for j in range(10):
            await setup.ask(Op.WRITE, b"/bench/t%d/k%d\0v" % (n, j))
    done = 0
    stop = time.monotonic() + duration

    async def loop(n: int, conn: Client) -> None:
        nonlocal done
        i = 0
        while time.monotonic() < stop:
            if op == "read":
                await conn.ask(Op.READ, b"/bench/key\0")
            elif op == "write":
                await conn.ask(Op.WRITE, b"/bench/c%d/k%d\0v" % (n, i % 100))
            elif op == "directory":
                await conn.ask(Op.DIRECTORY, b"/bench/dir\0")
            else:
                tx = int((await conn.ask(Op.TRANSACTION_START, b"\0")).payload.rstrip(b"\0"))
                for j in range(10):
                    await conn.ask(Op.WRITE, b"/bench/t%d/k%d\0v%d" % (n, j, i), tx)
                await conn.ask(Op.TRANSACTION_END, b"T\0", tx)
            done += 1
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(loop(n, c) for n, c in enumerate(conns)))
    elapsed = time.monotonic() - started
    for conn in conns:
        conn.writer.close()
    return done / elapsed


async def _watch_latency(path: str, samples: int) -> float:
    """Median milliseconds from a write's send to its watch event's arrival."""
    watcher, writer = await _connect(path), await _connect(path)
    await watcher.ask(Op.WATCH, b"/bench/w\0tok\0")
    watcher.queue.clear()
    times = []
    for i in range(samples):
        sent = time.monotonic()
        writer.writer.write(Message(Op.WRITE, 1, 0, b"/bench/w\0%d" % i).encode())
        while True:
            msg = await watcher.next()
            if msg.op == Op.WATCH_EVENT and msg.payload.startswith(b"/bench/w\0"):
                break
        times.append((time.monotonic() - sent) * 1000)
        await writer.next()  # the write's own answer
    return statistics.median(times)


def _fata(tmp: Path, core: int, process) -> tuple[object, str]:
    socket_path = str(tmp / "socket")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "core"), env.get("PYTHONPATH", "")])
    running = process.start(
        "fata", [sys.executable, "-m", "fata", "run", str(REPO / "appliances" / "xenstore_stub"),
                 "--", "--socket", socket_path, "--store", str(tmp / "store")],
        core=core, log_path=tmp / "fata.log", env=env)
    process.wait_ready(running, lambda: os.path.exists(socket_path) and os.path.exists(
        socket_path + "_ro"), 60)
    return running, socket_path


def _load_process():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fata_xs_bench_process",
                                                  DNS_BENCH / "process.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fata bench xenstore", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="0.5 s per measurement")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--out", type=Path, default=Path("bench-results") / "xenstore")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.duration <= 0:
        print("fata bench xenstore: --duration must be positive", file=sys.stderr)
        return 2
    duration = 0.5 if args.quick else args.duration
    process = _load_process()
    core = min(os.sched_getaffinity(0))
    others = [c for c in sorted(os.sched_getaffinity(0)) if c != core]
    if others:
        os.sched_setaffinity(0, {others[0]})
    rows = []
    with tempfile.TemporaryDirectory(prefix="fata-xs-bench-") as tmp:
        running, path = _fata(Path(tmp), core, process)
        try:
            for op in OPS[:-1]:
                for clients in (1, 16):
                    rate = asyncio.run(_run_op(path, op, clients, duration))
                    target = TARGETS.get(op) if clients == 16 else None
                    rows.append({"server": "Fata", "op": op, "clients": clients,
                                 "ops_per_s": rate, "target": target,
                                 "met": None if target is None else rate >= target,
                                 "status": "ok"})
            latency = asyncio.run(_watch_latency(path, 50 if args.quick else 500))
            rows.append({"server": "Fata", "op": "watch", "clients": 2, "latency_ms": latency,
                         "status": "ok"})
        finally:
            process.stop(running)
    for name, why in (("C xenstored", "without a hypervisor starts only with -D, then "
                                      "SIGSEGV on the first request"),
                      ("oxenstored", "exits at start: no /dev/xen/privcmd for Xenctrl")):
        rows.append({"server": name, "op": "-", "status": f"not run: {why}"})
    columns = [report.Column("server", "Server", align="left"),
               report.Column("op", "Operation", align="left"),
               report.Column("clients", "Clients"),
               report.Column("ops_per_s", "Ops/s", "{:,.0f}"),
               report.Column("latency_ms", "Latency ms", "{:.2f}"),
               report.Column("target", "Target", "{:,.0f}"),
               report.Column("met", "Met", lambda v: "-" if v is None else ("yes" if v else "NO")),
               report.Column("status", "Status", align="left")]
    title = (f"fata bench xenstore: {duration:g} s per measurement, daemon on CPU {core}, "
             f"clients on {others[0] if others else core}")
    report.print_table(rows, columns, title)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "xenstore-bench.json",
                      {"benchmark": "xenstore", "config": {"duration_s": duration,
                                                          "server_core": core},
                       "results": rows})
    return 0 if all(r["status"] == "ok" for r in rows if r["server"] == "Fata") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
