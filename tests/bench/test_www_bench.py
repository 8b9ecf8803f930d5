"""``fata bench www``: the wrk report parser, and ``--quick`` end to end against nginx.

The end-to-end test loads the harness by file path (as ``fata bench www`` does), runs Fata
and nginx under real wrk load for 2 s each and checks the JSON record. About 10 s.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "appliances" / "www" / "bench" / "harness.py"

SAMPLE = """\
Running 2s test @ http://127.0.0.1:8080/file-1k.bin
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.15ms  538.14us   8.38ms   75.74%
    Req/Sec    23.40k     4.24k   31.28k    70.00%
  Latency Distribution
     50%    2.21ms
     75%    2.36ms
     90%    2.59ms
     99%  850.00us
  23259 requests in 1.00s, 28.17MB read
Requests/sec:  23223.05
Transfer/sec:     28.13MB
"""

NON_2XX = """\
Running 1s test @ http://127.0.0.1:8080/nonexist
  1 threads and 5 connections
  Latency Distribution
     50%  845.00us
     99%    1.57ms
  6300 requests in 1.10s, 0.94MB read
  Non-2xx or 3xx responses: 6300
Requests/sec:   5731.04
Transfer/sec:      0.85MB
"""

SOCKET_ERRORS = SAMPLE.replace(
    "Requests/sec:", "  Socket errors: connect 0, read 3, write 0, timeout 1\nRequests/sec:")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fata_www_bench_harness_under_test", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    return _load()


def _module(harness: ModuleType, name: str) -> ModuleType:
    harness._bootstrap()
    return importlib.import_module(f"{harness.PACKAGE}.{name}")


@pytest.fixture(scope="module")
def wrk(harness: ModuleType) -> ModuleType:
    return _module(harness, "wrk")


def test_parse_wrk_report(wrk) -> None:
    result = wrk.parse(SAMPLE)
    assert result.ok and result.problems == []
    assert result.requests_per_s == pytest.approx(23223.05)
    assert result.requests == 23259
    assert result.transfer_per_s == pytest.approx(28.13 * 1024**2)
    assert result.latency_ms == pytest.approx(
        {"50%": 2.21, "75%": 2.36, "90%": 2.59, "99%": 0.85})
    assert result.non_2xx == 0


def test_non_2xx_responses_make_the_run_wrong(wrk) -> None:
    result = wrk.parse(NON_2XX)
    assert result.requests_per_s == pytest.approx(5731.04)
    assert result.non_2xx == 6300
    assert not result.ok
    assert any("non-2xx" in p for p in result.problems)


def test_socket_errors_and_missing_summary_make_the_run_wrong(wrk) -> None:
    result = wrk.parse(SOCKET_ERRORS)
    assert not result.ok and result.socket_errors == {
        "connect": 0, "read": 3, "write": 0, "timeout": 1}
    assert not wrk.parse("garbage").ok


H2LOAD = """\
finished in 2.00s, 10215.50 req/s, 10.70MB/s
requests: 20431 total, 20931 started, 20431 done, 20431 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 20431 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 21.40MB (22440000) total, 399.04KB (408620) headers (space savings 91.06%)
                     min         max         mean         sd        +/- sd
time for request:     1.37ms     98.24ms     48.41ms      7.55ms    92.61%
"""


@pytest.fixture(scope="module")
def h2load(harness: ModuleType) -> ModuleType:
    return _module(harness, "h2load")


def test_parse_h2load_report(h2load) -> None:
    result = h2load.parse(H2LOAD)
    assert result.ok and result.requests == 20431
    assert result.requests_per_s == pytest.approx(10215.5)
    assert result.transfer_per_s == pytest.approx(10.70 * 1024**2)
    assert result.latency_ms == pytest.approx({"mean": 48.41})
    bad = h2load.parse(H2LOAD.replace("0 failed, 0 errored", "3 failed, 1 errored")
                       .replace("0 4xx", "7 4xx"))
    assert not bad.ok and len(bad.problems) == 2
    assert not h2load.parse("garbage").ok


def test_bad_options_exit_2(harness) -> None:
    assert harness.main(["--rounds", "0"]) == 2
    assert harness.main(["--no-such-option"]) == 2
    assert harness.main(["--modes", "http,spdy"]) == 2
    assert harness.main(["--server-cpu", "0"]) == 2


@pytest.mark.slow
@pytest.mark.tool("wrk", "nginx", "taskset", "h2load", "curl")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_quick_run_measures_fata_and_nginx(harness, tmp_path, capsys) -> None:
    status = harness.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr()
    record = json.loads((tmp_path / "www-bench.json").read_text())
    rows = {(row["server"], row["mode"]): row for row in record["results"]}
    modes = ["http", "https", "h2", "conn"]
    assert set(rows) == {(s, m) for s in ("fata", "nginx") for m in modes}
    for key, row in rows.items():
        assert row["size"] == 1024, key
        assert row["requests_per_s"] is not None and row["requests_per_s"] > 0, (key, row)
        assert row["correct"] is True, (key, row["problems"])
    for mode in modes:
        ratio = rows[("nginx", mode)]["fata_ratio"]
        assert ratio is not None and ratio > 0, mode
    assert record["config"]["sizes"] == [1024] and record["config"]["duration_s"] == 2.0
    assert record["config"]["modes"] == modes
    startup = {row["server"]: row for row in record["startup"]}
    assert set(startup) == {"fata", "nginx"}
    for key, row in startup.items():
        assert row["site_mb"] == 5 and row["status"] == "ok", (key, row)
        assert 0 < row["first_answer_s"] < 60 and row["rss_mb"] > 5, (key, row)
    assert record["config"]["server_core"] != record["config"]["load_core"]
    assert "Fata" in (tmp_path / "www-bench.txt").read_text()
    assert (tmp_path / "www-bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert status == 0, printed.err
