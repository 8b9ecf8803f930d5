"""``fata bench tls``: fata.tls against OpenSSL, side by side, on loopback.

Both servers get the same certificate (ECDSA P-256, the common web choice), the same key
exchange (X25519, both sides' default) and the same file; the same C clients drive them:

- full handshakes per second: ``openssl s_time -new`` (TLS 1.3, no resumption) for a fixed
  wall-clock time;
- bulk MB/s: ``curl`` downloading one large file over TLS 1.3 (best of several runs).

Servers: ``python -m fata.bench.servers.tls`` (asyncio, uvloop when installed) and
``openssl s_server -WWW``.  Targets: bulk >= 0.8x, handshakes >= 0.5x OpenSSL.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"handshakes_per_s": 0.5, "bulk_mb_per_s": 0.8}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"server on port {port} did not start")


def _make_cert(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _core_path() -> str:
    import fata

    return str(Path(fata.__file__).resolve().parent.parent)


def _server_cmd(peer: str, cert: Path, key: Path, port: int, docroot: Path) -> list[str]:
    if peer == "fata":
        return [
            sys.executable,
            "-m",
            "fata.bench.servers.tls",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--port",
            str(port),
            "--docroot",
            str(docroot),
            "--tickets",
            "0",
        ]
    openssl = shutil.which("openssl") or "openssl"
    return [
        openssl,
        "s_server",
        "-accept",
        f"127.0.0.1:{port}",
        "-cert",
        str(cert),
        "-key",
        str(key),
        "-WWW",
        "-quiet",
        "-num_tickets",
        "0",
    ]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _handshakes(port: int, seconds: int) -> float:
    openssl = shutil.which("openssl") or "openssl"
    start = time.perf_counter()
    r = subprocess.run(
        [openssl, "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    elapsed = time.perf_counter() - start
    m = re.search(r"(\d+) connections in [\d.]+s", r.stdout)
    if not m:
        raise RuntimeError(f"s_time failed: {r.stdout[-500:]} {r.stderr[-500:]}")
    return int(m.group(1)) / elapsed


def _bulk(port: int, name: str, runs: int) -> float:
    curl = shutil.which("curl") or "curl"
    best = 0.0
    for _ in range(runs):
        r = subprocess.run(
            [
                curl,
                "-sk",
                "--tlsv1.3",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{time_total} %{time_appconnect}",
                f"https://localhost:{port}/{name}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        size, total, connect = (float(x) for x in r.stdout.split())
        if size <= 0:
            raise RuntimeError(f"bulk download failed: {r.stderr}")
        best = max(best, size / (total - connect) / 1e6)
    return best


def run_peer(peer: str, cert: Path, key: Path, docroot: Path, args: argparse.Namespace) -> dict:
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = _core_path() + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        _server_cmd(peer, cert, key, port, docroot),
        cwd=docroot,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        cpu0 = _cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        hs = _handshakes(port, args.seconds)
        elapsed = time.perf_counter() - t0
        cpu1 = _cpu_seconds(proc.pid)
        bulk = _bulk(port, "bulk.bin", args.runs)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_cpu_ms = None
    if cpu0 is not None and cpu1 is not None and hs > 0:
        # Server CPU per handshake: what the server itself pays, whoever the client is.
        server_cpu_ms = round((cpu1 - cpu0) * 1000 / (hs * elapsed), 3)
    return {
        "handshakes_per_s": round(hs, 1),
        "server_cpu_ms_per_handshake": server_cpu_ms,
        "bulk_mb_per_s": round(bulk, 1),
    }


def main(argv: list[str]) -> int:
    from fata.bench.report import Column, Target, grouped_bar_chart, print_table, write_json

    p = argparse.ArgumentParser(
        prog="fata bench tls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results/tls"),
        help="output directory (default bench-results/tls/)",
    )
    p.add_argument("--seconds", type=int, help="handshake measurement time per server")
    p.add_argument("--runs", type=int, help="bulk downloads per server (best is kept)")
    args = p.parse_args(argv)
    for tool in ("openssl", "curl"):
        if shutil.which(tool) is None:
            print(f"fata bench tls: {tool} is required", file=sys.stderr)
            return 2
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.runs = args.runs or (2 if args.quick else 5)
    size = (32 if args.quick else 256) << 20
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fata-bench-tls-") as tmp:
        d = Path(tmp)
        cert, key = _make_cert(d)
        docroot = d / "www"
        docroot.mkdir()
        (docroot / "bulk.bin").write_bytes(os.urandom(size))
        for peer in ("fata", "openssl"):
            results[peer] = run_peer(peer, cert, key, docroot, args)
    targets = [
        Target(f"{k} vs openssl", results["fata"][k] / results["openssl"][k], t, ">=", "x")
        for k, t in TARGETS.items()
    ]
    rows = [
        {"server": name, **values}
        for name, values in (
            ("fata.tls", results["fata"]),
            ("openssl s_server", results["openssl"]),
        )
    ]
    rows.append(
        {"server": "ratio", **{k: t.measured for k, t in zip(TARGETS, targets, strict=True)}}
    )
    print_table(
        rows,
        [
            Column("server", "server", align="left"),
            Column("handshakes_per_s", "full handshakes/s", "{:,.2f}"),
            Column("server_cpu_ms_per_handshake", "server CPU ms/handshake", "{:,.3f}"),
            Column("bulk_mb_per_s", "bulk MB/s", "{:,.2f}"),
        ],
        title="TLS 1.3, ECDSA P-256, X25519 (loopback)",
    )
    for t in targets:
        print(t.describe())
    report = {
        "benchmark": "tls",
        "quick": args.quick,
        "setup": {
            "certificate": "ECDSA P-256",
            "group": "X25519",
            "version": "TLSv1.3",
            "bulk_bytes": size,
            "handshake_client": "openssl s_time -new",
            "handshake_seconds": args.seconds,
            "bulk_client": "curl",
            "bulk_runs": args.runs,
        },
        "results": results,
        "targets": [t.as_dict() for t in targets],
    }
    path = write_json(args.out / "tls-bench.json", report)
    print(f"wrote {path}")
    try:
        png = grouped_bar_chart(
            args.out / "tls-bench.png",
            ["full handshakes/s", "bulk MB/s"],
            {
                "fata.tls": [results["fata"]["handshakes_per_s"], results["fata"]["bulk_mb_per_s"]],
                "openssl": [
                    results["openssl"]["handshakes_per_s"],
                    results["openssl"]["bulk_mb_per_s"],
                ],
            },
            title="fata.tls vs OpenSSL",
            ylabel="per second",
            xlabel="",
        )
        print(f"wrote {png}")
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
