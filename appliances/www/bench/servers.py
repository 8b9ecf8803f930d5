"""The servers under test: how each is configured and started.

Starting, pinning and stopping reuse the DNS harness's ``process`` module, and
``--server-cpu`` its ``cpucap`` (plain stdlib, loaded by file path), so both benchmarks pin,
cap and stop servers the same way.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
WWW = REPO / "appliances" / "www"
_DNS_BENCH = REPO / "appliances" / "dns" / "bench"


def _load(module: str) -> ModuleType:
    name = f"fata_www_bench_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _DNS_BENCH / f"{module}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


process = _load("process")
cpucap = _load("cpucap")  # --server-cpu: a CFS bandwidth limit on the server's threads

NAMES = {"fata": "Fata", "nginx": "nginx"}


@dataclass(frozen=True)
class TLS:
    """The HTTPS side of a server: its port and the certificate files both servers use."""

    port: int
    cert: Path
    key: Path


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A P-256 certificate for localhost and 127.0.0.1 signed by a fresh CA, in
    ``directory``: (certificate, key, CA) paths.  The www appliance's development
    certificate code makes it, so both servers serve the same kind of key."""
    if str(WWW) not in sys.path:
        sys.path.insert(0, str(WWW))
    from fata_www import devcert

    devcert.ensure(directory)
    return directory / devcert.CERT_FILE, directory / devcert.KEY_FILE, directory / "ca.pem"


@dataclass
class Server:
    """How to start one server: its command line, or why it cannot be started."""

    key: str
    argv: list[str] | None
    missing: str | None = None
    env: dict[str, str] | None = None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "core"), env.get("PYTHONPATH", "")) if p
    )
    return env


def build_image(out: Path) -> Path:
    """``fata build appliances/www`` into ``out``: the sealed image the start-up run times
    (``fata run DIR`` would time the build too)."""
    done = subprocess.run([sys.executable, "-m", "fata", "build", str(WWW), "--out", str(out)],
                          capture_output=True, text=True, env=_env(), check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"fata build failed: {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def fata(site: Path, port: int, tls: TLS | None = None, image: Path | None = None) -> Server:
    """The Fata www appliance, run from source with this interpreter (or ``image``)."""
    env = _env()
    argv = [sys.executable, "-m", "fata", "run", str(image or WWW), "--",
            "--listen", "127.0.0.1", "--port", str(port), "--site", str(site)]
    if tls is not None:
        argv += ["--tls-port", str(tls.port), "--tls-cert", str(tls.cert),
                 "--tls-key", str(tls.key)]
    return Server("fata", argv, env=env)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None
    )


def nginx_config(site: Path, port: int, work: Path, tls: TLS | None = None) -> str:
    """An nginx configuration tuned for static files, everything it writes under ``work``;
    with ``tls``, an HTTPS listener too (TLS 1.3 and 1.2, session tickets, HTTP/2)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {work / ('nginx-' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {work / 'nginx.pid'};
error_log {work / 'nginx-error.log'} warn;
events {{
    worker_connections 4096;
}}
http {{
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    access_log off;
{temp}
    server {{
        listen 127.0.0.1:{port};
        root {site};
    }}
{_nginx_tls(site, tls)}}}
"""


def _nginx_tls(site: Path, tls: TLS | None) -> str:
    if tls is None:
        return ""
    return f"""    server {{
        listen 127.0.0.1:{tls.port} ssl http2;
        ssl_certificate {tls.cert};
        ssl_certificate_key {tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:fata_bench:10m;
        ssl_session_tickets on;
        root {site};
    }}
"""


def nginx(site: Path, port: int, work: Path, tls: TLS | None = None) -> Server:
    """Debian's nginx in the foreground with one worker."""
    binary = nginx_binary()
    if binary is None:
        return Server("nginx", None, missing="nginx not installed (apt-get install nginx-light)")
    conf = work / "nginx.conf"
    conf.write_text(nginx_config(site, port, work, tls))
    argv = [binary, "-p", str(work), "-e", str(work / "nginx-error.log"),
            "-c", str(conf), "-g", "daemon off;"]
    return Server("nginx", argv)
