"""The www appliance's configuration: the devices it needs and its runtime arguments."""

from fata.config import (
    Appliance,
    arg,
    clock,
    console,
    kv_ro,
    kv_runtime,
    lifecycle,
    random,
    stack,
)

appliance = Appliance(
    name="www",
    version="0.1.0",
    entry="fata_www.unikernel:start",
    # uvloop: measured faster for many TCP connections (fata bench www: about 1.3x the
    # keep-alive requests/s of asyncio's loop); --key loop=asyncio builds without it
    loop="uvloop",
    devices={
        "stack": stack(),
        # the default site, rendered from the docs at build time (fata_www.render)
        "content": kv_ro("data/site", generate="fata_www.render:generate"),
        "site": kv_runtime(),  # --site DIR: fata run --kv site=DIR, or host paths
        "tls": kv_runtime(),  # --tls-cert/--tls-key files: fata run --kv tls=DIR, or host paths
        # the development certificate, made at build time (fata_www.devcert)
        "devcert": kv_ro("data/devcert", generate="fata_www.devcert:generate"),
        "random": random(),
        "clock": clock(),
        "console": console(),
        "lifecycle": lifecycle(),
    },
    args=[
        arg("listen", type=str, default="",
            help="address to serve on (default: the stack's own address, 127.0.0.1 on "
                 "--net socket, 10.77.0.2 on --net direct)"),
        arg("port", type=int, default=80, help="HTTP port"),
        arg("tls", type=bool, default=False,
            help="also serve HTTPS (Fata's own TLS 1.3/1.2) on --tls-port; implied by "
                 "--tls-cert; without --tls-cert the development certificate baked at build "
                 "time is served (trust it with curl --cacert "
                 "~/.local/state/fata/www-devcert/ca.pem)"),
        arg("tls_port", type=int, default=443, help="HTTPS port"),
        arg("http2", type=bool, default=True,
            help="HTTP/2: offered by ALPN over TLS, and spoken over cleartext to clients that "
                 "open with its preface (prior knowledge); --no-http2 for HTTP/1.1 only"),
        arg("tls_cert", type=str, multiple=True,
            help="PEM certificate chain (leaf first), read from the run-time store 'tls'; "
                 "repeatable, paired in order with --tls-key; the pair whose names match "
                 "the client's SNI is served, else the first"),
        arg("tls_key", type=str, multiple=True,
            help="PEM private key of the --tls-cert at the same position"),
        arg("redirect_http", type=bool, default=False,
            help="with HTTPS on, the plain HTTP listener answers every request with a 308 "
                 "to the same URL over HTTPS"),
        arg("hsts", type=str, default="",
            help="Strict-Transport-Security value sent on HTTPS answers about files, e.g. "
                 "'max-age=63072000; includeSubDomains' (never over plain HTTP, RFC 6797)"),
        arg("site", type=str, default="",
            help="directory to serve, read from the run-time store 'site' (a host path; "
                 "confined to DIR by fata run --kv site=DIR); re-read on SIGHUP; default: "
                 "the site baked at build time"),
        arg("cache_control", type=str, multiple=True,
            help="/GLOB=VALUE: the Cache-Control of files whose URL path matches GLOB "
                 "(fnmatch; the first matching rule wins), e.g. "
                 "'/assets/*=public, max-age=31536000, immutable'; repeatable"),
        arg("security_headers", type=bool, default=False,
            help="add X-Content-Type-Options: nosniff, X-Frame-Options: SAMEORIGIN and "
                 "Referrer-Policy: strict-origin-when-cross-origin to every file's answers"),
        arg("access_log", type=bool, default=False,
            help="log every request in Common Log Format on the console"),
        arg("max_connections", type=int, default=1024,
            help="concurrent connections; a new one beyond it gets 503 and is closed"),
        arg("header_timeout", type=float, default=10.0,
            help="seconds from a request's first byte (or the accept) to the end of its "
                 "headers; bytes trickling in do not extend it"),
        arg("idle_timeout", type=float, default=30.0,
            help="seconds a keep-alive connection may wait for its next request"),
        arg("max_request_line", type=int, default=8192,
            help="bytes of the request line; longer gets 414"),
        arg("max_header_bytes", type=int, default=16384,
            help="bytes of the request line and headers together; more gets 431"),
        arg("max_body", type=int, default=65536,
            help="bytes of a request body (read and discarded); more gets 413"),
        arg("max_pipeline", type=int, default=32,
            help="pipelined requests answered from one read before their answers are "
                 "written (the rest wait, unread)"),
    ],
)
