"""The ``fata bench tls`` harness runs end to end (shortest settings; not a timing test)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.tool("openssl", "curl")
def test_bench_tls_quick(tmp_path, capsys):
    from fata.bench.tls import main

    assert main(["--quick", "--seconds", "1", "--runs", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "tls-bench.json").read_text())
    for peer in ("fata", "openssl"):
        assert report["results"][peer]["handshakes_per_s"] > 0
        assert report["results"][peer]["bulk_mb_per_s"] > 0
    assert {t["name"] for t in report["targets"]} == {
        "handshakes_per_s vs openssl",
        "bulk_mb_per_s vs openssl",
    }
    assert "fata.tls" in capsys.readouterr().out
