"""fata.bench.report: the table, JSON and chart helpers every benchmark harness shares."""

from __future__ import annotations

import io
import json
import math

import pytest
from fata.bench import report

COLUMNS = [
    report.Column("name", "Server", align="left"),
    report.Column("qps", "qps", "{:,.0f}"),
    report.Column("ratio", "Ratio", lambda v: f"{v:.2f}x"),
]
ROWS = [
    {"name": "Fata", "qps": 123456.7, "ratio": 1.5},
    {"name": "A much longer server name", "qps": None, "ratio": math.nan},
]


def test_plain_table_aligns_columns_and_marks_missing_values() -> None:
    text = report.render_table(ROWS, COLUMNS, "Title")
    lines = text.splitlines()
    assert lines[0] == "Title"
    assert lines[1].split() == ["Server", "qps", "Ratio"]
    assert "123,457" in lines[3] and "1.50x" in lines[3]
    # None and NaN both render as the missing marker, right-aligned under their headers.
    assert lines[4].split() == ["A", "much", "longer", "server", "name", "-", "-"]
    assert len({len(line) for line in lines[1:3]}) == 1
    assert lines[3].index("123,457") + len("123,457") == lines[1].index("qps") + len("qps")


@pytest.mark.parametrize("use_rich", [False, True])
def test_print_table_never_truncates_values(use_rich: bool) -> None:
    rows = [{"name": "server-" + "x" * 60, "qps": 98765432.0, "ratio": 12.345}]
    out = io.StringIO()
    report.print_table(rows, COLUMNS, "Wide", file=out, use_rich=use_rich)
    text = out.getvalue()
    assert "server-" + "x" * 60 in text
    assert "98,765,432" in text and "12.35x" in text
    assert "…" not in text


def test_write_json_is_atomic_and_refuses_nan(tmp_path) -> None:
    path = tmp_path / "sub" / "result.json"
    report.write_json(path, {"rows": [{"qps": 1.5, "where": tmp_path}]})
    assert json.loads(path.read_text()) == {"rows": [{"qps": 1.5, "where": str(tmp_path)}]}
    with pytest.raises(ValueError):
        report.write_json(path, {"qps": math.nan})
    # The earlier file is intact and no temporary file is left behind.
    assert json.loads(path.read_text())["rows"][0]["qps"] == 1.5
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_grouped_bar_chart_writes_a_png_with_missing_bars(tmp_path) -> None:
    path = report.grouped_bar_chart(
        tmp_path / "chart.png",
        ["100", "1,000", "10,000"],
        {"Fata": [3.0, 2.0, 1.0], "Peer": [1.0, None, 0.5], "Absent": [None, None, None]},
        title="t",
        ylabel="y",
        xlabel="x",
        spread={"Fata": [(2.5, 3.5), None, (0.9, 1.2)], "Peer": [None, None, None]},
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


def test_grouped_bar_chart_rejects_series_of_the_wrong_length(tmp_path) -> None:
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        report.grouped_bar_chart(
            tmp_path / "c.png", ["a", "b", "c"], {"S": [1.0, 2.0]}, title="", ylabel="", xlabel=""
        )
    assert not (tmp_path / "c.png").exists()


def test_ratios_are_none_when_they_cannot_be_computed() -> None:
    assert report.ratio(3.0, 2.0) == 1.5
    assert report.ratio(None, 2.0) is None
    assert report.ratio(3.0, None) is None
    assert report.ratio(3.0, 0.0) is None
    assert report.ratios({"fata": 4.0, "bind": 2.0, "nsd": None}, "fata") == {
        "bind": 2.0,
        "nsd": None,
    }


def test_targets_distinguish_met_failed_and_unknown() -> None:
    faster = report.Target("qps vs BIND9", 1.4, 1.3, ">=", "x")
    slower = report.Target("qps vs Knot", 0.7, 1.0, ">=", "x")
    small = report.Target("rss", 40.0, 100.0, "<=", " MB")
    unknown = report.Target("rss", None, 100.0, "<=", " MB")
    assert (faster.met, slower.met, small.met, unknown.met) == (True, False, True, None)
    assert slower.describe() == "qps vs Knot: >= 1x, measured 0.7x -> NOT met"
    assert unknown.describe().endswith("measured - -> unknown")
    assert faster.as_dict()["met"] is True
