"""Small self-contained checks of the www appliance that a fork (``fata new``) carries along.

They use only the default site as the build renders it (``fata_www.render``) and the engine
(no network, no peers); the full suite, with curl and the running appliance, lives in the
project's ``tests/www/``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fata.platform.kv_dir import DirectoryKV  # noqa: E402

from fata_www.engine import HttpConnection, HttpServer  # noqa: E402
from fata_www.paths import encode  # noqa: E402
from fata_www.render import render  # noqa: E402
from fata_www.responses import Responses  # noqa: E402
from fata_www.site import load_site  # noqa: E402


def _ask(server: HttpServer, target: bytes) -> tuple[bytes, bytes]:
    conn = HttpConnection(server, 0.0)
    out = b"".join(conn.receive(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n", 1.0,
                                1_700_000_000.0))
    head, _, body = out.partition(b"\r\n\r\n")
    return head, body


def test_every_baked_file_is_served_whole(tmp_path: Path) -> None:
    render(tmp_path)
    site = load_site(DirectoryKV(tmp_path), "", 1_700_000_000)
    server = HttpServer(Responses(site))
    assert "/index.html" in site.resources
    for path, resource in site.resources.items():
        head, body = _ask(server, encode(path))
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), path
        assert hashlib.sha256(body).hexdigest() == resource.sha256, path
    head, _ = _ask(server, b"/no/such/page")
    assert head.startswith(b"HTTP/1.1 404 ")
    head, _ = _ask(server, b"/../etc/passwd")
    assert head.startswith(b"HTTP/1.1 400 ")
