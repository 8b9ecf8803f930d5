"""The www appliance: wires the sans-IO HTTP engine to the devices it is given.

One task per TCP connection (``Stack.tcp_listen``) runs an
:class:`~fata_www.engine.HttpConnection`: it reads with the deadline the engine names,
measured on the ``Clock`` (header timeout, idle timeout), writes the engine's answers in
order (``Flow.write`` waits while the peer does not read, which is the backpressure that
bounds a pipelining client), and ends the connection when the engine says so, with a
lingering close: our side is shut first and what the peer still sends is read and dropped
for a moment, so that a 400 is not destroyed by the RST that closing on unread data sends.
Beyond ``--max-connections`` a new connection gets a 503 and is closed; the others are
unaffected.

With ``--tls`` (or ``--tls-cert``) a second listener on ``--tls-port`` runs Fata's own TLS
(``fata.tls.flow.accept``, the handshake bounded by ``--header-timeout``) and then the same
loop over the plaintext ``Flow`` it gives, with its own answers (HSTS); the plain listener
keeps serving the site, or answers 308 to HTTPS with ``--redirect-http``
(``fata_www.tlssetup``).  Both count against ``--max-connections``.

The site is read only here, through a ``KV``: ``--site DIR`` from the run-time store
``site``, else the baked ``content``.  SIGHUP re-reads it off the event loop and swaps the
server's responses whole, or logs the error and keeps the old site.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from fata.devices import KV, Clock, Console, Flow, KeyNotFound, Lifecycle, Random, Stack
from fata.runtime.reload import Reloader
from fata.tls import TLSConfig
from fata.tls.flow import accept

from fata_www.engine import HttpConnection, HttpServer, Limits, LogEntry
from fata_www.h2engine import H2Connection, is_preface
from fata_www.policy import HeaderPolicy
from fata_www.responses import Responses, closing_bytes
from fata_www.site import BUILD_EPOCH_KEY, Site, SiteError, load_site
from fata_www.tlssetup import RedirectResponses, TLSSetupError, dev_pair, load_pairs, tls_config

LINGER_SECONDS = 2.0  # how long a closing connection's input is drained
LINGER_BYTES = 1 << 20
COALESCE = 16384  # answers up to this size are joined into one write


def clf_time(wall: float) -> str:
    """``10/Oct/2000:13:55:36 +0000``: Common Log Format's time, in UTC."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(wall))


def clf_line(host: str, wall: float, entry: LogEntry) -> str:
    """One Common Log Format line (``host ident authuser [date] "request" status bytes``)."""
    request = entry.request_line.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"')
    size = str(entry.size) if entry.size else "-"
    return f'{host} - - [{clf_time(wall)}] "{request}" {entry.status} {size}'


class _ReadTimer:
    """A connection's deadline on reads, armed lazily: one timer stays set while the
    engine's deadline only moves later (each request moves the idle deadline), instead of a
    new ``asyncio.timeout`` per read; when it fires during a read it cancels that read,
    and the loop then asks the engine again.  It never interrupts a write (a slow reader
    waits on ``Flow.write``'s backpressure, as before)."""

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._armed = float("inf")
        self._task: asyncio.Task | None = None
        self._reading = False
        self._fired = False

    def _fire(self) -> None:
        self._handle, self._armed = None, float("inf")
        if self._reading and self._task is not None:
            self._fired = True
            self._task.cancel()

    async def read(self, flow: Flow, deadline: float, remaining: float) -> bytes | None:
        """``flow.read()``, or None if ``deadline`` (``remaining`` seconds away) came
        first."""
        if self._handle is None or self._armed > deadline:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = asyncio.get_running_loop().call_later(remaining, self._fire)
            self._armed = deadline
            self._task = asyncio.current_task()
        self._reading = True
        try:
            return await flow.read()
        except asyncio.CancelledError:
            if not self._fired:
                raise
            self._fired = False
            assert self._task is not None
            self._task.uncancel()
            return None
        finally:
            self._reading = False

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class WwwAppliance:
    """The running appliance: the shared server, its listener, reload and the connections."""

    def __init__(self, stack: Stack, content: KV, site: KV, clock: Clock, console: Console,
                 args: argparse.Namespace, tls: KV | None = None, devcert: KV | None = None,
                 random: Random | None = None) -> None:
        self.stack = stack
        self.content = content
        self.site_kv = site
        self.tls_kv = tls
        self.devcert = devcert
        self.random = random
        self.clock = clock
        self.console = console
        self.args = args
        self.limits = Limits(
            max_request_line=int(args.max_request_line),
            max_header_bytes=int(args.max_header_bytes), max_body=int(args.max_body),
            max_pipeline=max(1, int(args.max_pipeline)),
            header_timeout=float(args.header_timeout), idle_timeout=float(args.idle_timeout))
        self.max_connections = int(args.max_connections)
        self.policy = HeaderPolicy.parse(list(args.cache_control or []),
                                         bool(args.security_headers), str(args.hsts or ""))
        self.https = bool(args.tls or args.tls_cert)
        if args.redirect_http and not self.https:
            raise TLSSetupError("--redirect-http needs HTTPS on: add --tls (the development "
                                "certificate) or --tls-cert/--tls-key")
        self.tls_config: TLSConfig | None = None
        self.site: Site | None = None
        self.server: HttpServer | None = None
        self.tls_server: HttpServer | None = None
        self.connections = 0
        self.refused = 0
        self.timeouts = {"header": 0, "idle": 0}
        self._tasks: set[asyncio.Task] = set()
        self.reloader = Reloader(console, "site", (SiteError,))

    def load(self) -> Site:
        """The site to serve, read now (SiteError if it cannot be)."""
        if self.args.site:
            return load_site(self.site_kv, self.args.site, self.clock.time(), self.site)
        return load_site(self.content, "", self.baked_epoch(), self.site)

    def baked_epoch(self) -> float:
        """When the baked site was made: the build's epoch, which its build hook records
        (``.build-epoch``, hidden so never served); the load time for a baked directory
        without it."""
        try:
            return float(int(self.content.get(BUILD_EPOCH_KEY).decode("ascii").strip()))
        except (KeyNotFound, ValueError, UnicodeDecodeError):
            return self.clock.time()

    def describe(self, site: Site) -> str:
        where = self.args.site or "the baked site"
        return f"{where}: {len(site.resources)} files, {site.total_bytes} bytes"

    def answers(self, site: Site) -> tuple[Responses | RedirectResponses, Responses | None]:
        """The plain listener's answers and the TLS listener's (None without HTTPS); the
        two share the compressed variants."""
        secure = Responses(site, self.policy, secure=True) if self.https else None
        if self.args.redirect_http:
            return RedirectResponses(int(self.args.tls_port)), secure
        return Responses(site, self.policy, like=secure), secure

    def load_tls(self) -> TLSConfig:
        """The TLS configuration from ``--tls-cert``/``--tls-key``, else the baked
        development certificate (TLSSetupError names what is wrong)."""
        assert self.random is not None and self.tls_kv is not None
        assert self.devcert is not None
        certs, keys = list(self.args.tls_cert or []), list(self.args.tls_key or [])
        pairs = load_pairs(self.tls_kv, certs, keys) if certs or keys else [
            dev_pair(self.devcert)]
        return tls_config(pairs, self.random.bytes, http2=bool(self.args.http2))

    async def run(self, lifecycle: Lifecycle) -> None:
        self.site = self.load()
        if self.https:
            self.tls_config = self.load_tls()
        plain, secure = self.answers(self.site)
        access_log = bool(self.args.access_log)
        self.server = HttpServer(plain, self.limits, access_log=access_log)
        if secure is not None:
            self.tls_server = HttpServer(secure, self.limits, access_log=access_log)
        if not self.args.listen:  # the stack's own address: one command works on every target
            addresses = [a for a in self.stack.addresses if a.version == 4]
            self.args.listen = str(addresses[0]) if addresses else "0.0.0.0"
        listeners = [await self.stack.tcp_listen(self.args.listen, self.args.port,
                                                 self.handle_flow)]
        what = "redirecting to HTTPS" if self.args.redirect_http else "serving"
        self.console.info(f"{what} {self.describe(self.site)} on "
                          f"http://{self.args.listen}:{listeners[0].local[1]}/")
        if self.tls_server is not None:
            listeners.append(await self.stack.tcp_listen(self.args.listen, self.args.tls_port,
                                                         self.handle_tls))
            self.console.info(f"serving {self.describe(self.site)} on "
                              f"https://{self.args.listen}:{listeners[1].local[1]}/")
            if not self.args.tls_cert:
                self.console.info(
                    "HTTPS uses the development certificate made at build time: trust it "
                    "with curl --cacert ~/.local/state/fata/www-devcert/ca.pem (the CA of "
                    "the user who built the image, under $XDG_STATE_HOME if set)")
        lifecycle.on_reload(lambda: self._spawn(self.reload()))
        try:
            await lifecycle.wait_stopped()
        finally:
            for listener in listeners:
                listener.close()
            for task in list(self._tasks):
                task.cancel()
            self.console.info(
                f"stopping: {self.refused} connections refused (over --max-connections), "
                f"timeouts {self.timeouts['header']} header, {self.timeouts['idle']} idle")

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> None:
        """Re-read the site; swap only if it loads whole (SIGHUP)."""
        def load() -> tuple[Site, tuple[Responses | RedirectResponses, Responses | None]]:
            site = self.load()
            return site, self.answers(site)

        loaded = await self.reloader.load(load)
        if loaded is None:
            return
        site, (plain, secure) = loaded
        assert self.server is not None
        self.site = site
        self.server.responses = plain
        if self.tls_server is not None and secure is not None:
            self.tls_server.responses = secure
        self.console.info(f"reloaded {self.describe(site)}")

    async def handle_tls(self, flow: Flow) -> None:
        """One HTTPS connection: the handshake (within ``--header-timeout``), then the same
        loop as plain HTTP over the plaintext flow.  Over the limit it is closed at once
        (a 503 would first cost a handshake)."""
        if self.connections >= self.max_connections:
            self.refused += 1
            flow.abort()
            return
        assert self.tls_config is not None and self.tls_server is not None
        self.connections += 1
        try:
            try:
                async with asyncio.timeout(self.limits.header_timeout):
                    tls = await accept(flow, self.tls_config, clock=self.clock.time)
            except TimeoutError:
                self.timeouts["header"] += 1
                flow.abort()
                return
            h2 = tls.handshake is not None and tls.handshake.alpn == "h2"
            await self._serve(tls, self.tls_server, h2=h2)
        except ConnectionError:  # TLSHandshakeError included: the alert was sent
            pass
        finally:
            self.connections -= 1

    async def handle_flow(self, flow: Flow) -> None:
        """One connection: requests in, answers out, until the engine closes it."""
        if self.connections >= self.max_connections:
            self.refused += 1
            try:
                await flow.write(closing_bytes(503))
                await self._linger(flow)
            except ConnectionError:
                pass
            return
        self.connections += 1
        try:
            assert self.server is not None
            await self._serve(flow, self.server)
        except ConnectionError:
            pass
        finally:
            self.connections -= 1

    async def _serve(self, flow: Flow, server: HttpServer, h2: bool = False) -> None:
        """Run one connection's engine: HTTP/2 when ALPN chose it (``h2``) or when the
        client's first bytes are the HTTP/2 preface (prior knowledge), else HTTP/1.1."""
        clock = self.clock
        accepted = clock.monotonic()
        conn: HttpConnection | H2Connection
        if h2:
            conn = H2Connection(server, accepted)
            await flow.write(conn.initiate()[0])
        else:
            conn = HttpConnection(server, accepted)
        sniffing = not h2 and bool(self.args.http2)
        host = str(flow.peer[0])
        timer = _ReadTimer()
        try:
            await self._loop(flow, server, conn, timer, sniffing, accepted, host)
        finally:
            timer.cancel()

    async def _loop(self, flow: Flow, server: HttpServer, conn: HttpConnection | H2Connection,
                    timer: _ReadTimer, sniffing: bool, accepted: float, host: str) -> None:
        clock = self.clock
        first = b""
        while not conn.closed:
            deadline = conn.next_deadline()
            assert deadline is not None
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                await self._write(flow, conn, conn.on_timer(clock.monotonic()), host)
                if conn.timed_out:
                    self.timeouts[conn.timed_out] += 1
                continue
            data = await timer.read(flow, deadline, remaining)
            if data is None:
                continue  # the deadline is checked on the engine's own terms
            if not data:
                await self._write(flow, conn, conn.receive_eof(clock.monotonic(), clock.time()),
                                  host)
                return
            if sniffing:  # the first bytes: HTTP/2's preface, a beginning of it, or not
                first += data
                decided = is_preface(first)
                if decided is None:
                    continue
                sniffing, data = False, first
                if decided:
                    conn = H2Connection(server, accepted)
                    await flow.write(conn.initiate()[0])
            await self._write(flow, conn, conn.receive(data, clock.monotonic(), clock.time()),
                              host)
            while conn.pending:
                await self._write(flow, conn, conn.receive(b"", clock.monotonic(), clock.time()),
                                  host)
        await self._linger(flow)

    async def _write(self, flow: Flow, conn: HttpConnection | H2Connection, out: list[bytes],
                     host: str) -> None:
        if conn.log:
            wall = self.clock.time()
            for entry in conn.log:
                self.console.info(clf_line(host, wall, entry))
            conn.log.clear()
        if not out:
            return
        if len(out) > 1 and sum(map(len, out)) <= COALESCE:
            out = [b"".join(out)]
        for chunk in out:
            await flow.write(chunk)

    async def _linger(self, flow: Flow) -> None:
        """Shut our side, then drop what the peer still sends for a moment (see above)."""
        try:
            await flow.shutdown()
            deadline = self.clock.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES:
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        data = await flow.read()
                except TimeoutError:
                    break
                if not data:
                    break
                drained += len(data)
        except ConnectionError:
            pass


async def start(*, stack: Stack, content: KV, site: KV, tls: KV, devcert: KV, random: Random,
                clock: Clock, console: Console, lifecycle: Lifecycle,
                args: argparse.Namespace) -> None:
    """Entry point called by the Fata runtime."""
    await WwwAppliance(stack, content, site, clock, console, args, tls, devcert,
                       random).run(lifecycle)
