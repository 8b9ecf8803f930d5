"""Reporting helpers shared by the benchmark harnesses of every appliance.

A harness measures; this module presents. Keeping presentation here means the DNS, TLS
and network benchmarks print the same kind of table, write the same shape of JSON and draw
the same kind of chart, so a reader compares them without relearning the format.

Everything here is plain data in, file or text out:

- :func:`print_table` / :func:`render_table` -- a result table, through ``rich`` when it is
  installed and a terminal-friendly plain-text layout otherwise (CI logs, pipes).
- :func:`write_json` -- the machine-readable record, written atomically.
- :func:`grouped_bar_chart` -- a PNG in the style of the ASPLOS 2013 unikernel figures:
  one group of bars per category (e.g. zone size), one bar per series (e.g. server).
- :func:`ratio`, :func:`ratios` and :class:`Target` -- "ours versus theirs" numbers and the
  pass/fail of a stated speed or size target.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

MISSING = "-"
"""How a cell with no value (server missing, measurement failed) is shown."""


@dataclass(frozen=True)
class Column:
    """One column of a result table.

    ``fmt`` is either a :meth:`str.format` spec applied to the value (``"{:,.0f}"``) or a
    callable returning the cell text; ``None`` values always render as :data:`MISSING`, so a
    harness can put ``None`` wherever something could not be measured.
    """

    key: str
    title: str
    fmt: str | Callable[[Any], str] = "{}"
    align: Literal["left", "right"] = "right"


def format_cell(value: Any, column: Column) -> str:
    """Text of one cell; ``None`` and NaN become :data:`MISSING`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if callable(column.fmt):
        return column.fmt(value)
    return column.fmt.format(value)


def _cells(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[list[str]]:
    return [[format_cell(row.get(col.key), col) for col in columns] for row in rows]


def render_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str | None = None
) -> str:
    """The table as plain text (no colour, no box characters), for logs and pipes."""
    body = _cells(rows, columns)
    widths = [len(col.title) for col in columns]
    for line in body:
        widths = [max(w, len(cell)) for w, cell in zip(widths, line, strict=True)]

    def fmt_line(cells: Sequence[str]) -> str:
        parts = []
        for cell, col, width in zip(cells, columns, widths, strict=True):
            parts.append(cell.ljust(width) if col.align == "left" else cell.rjust(width))
        return "  ".join(parts).rstrip()

    out = []
    if title:
        out.append(title)
    out.append(fmt_line([col.title for col in columns]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(fmt_line(line) for line in body)
    return "\n".join(out) + "\n"


def _rich_console(file: IO[str] | None, min_width: int) -> Any | None:
    try:
        from rich.console import Console
    except ImportError:
        return None
    console = Console(file=file, soft_wrap=False)
    if console.width < min_width:
        # Never squeeze numbers into ellipses: a too-narrow terminal (or a pipe, which rich
        # treats as 80 columns) gets a wider table that wraps, rather than a truncated one.
        console = Console(file=file, soft_wrap=False, width=min_width)
    return console


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    title: str | None = None,
    *,
    file: IO[str] | None = None,
    use_rich: bool | None = None,
) -> None:
    """Print the table: with ``rich`` when available (``use_rich=None``), else plain text.

    ``use_rich=False`` forces the plain layout; ``True`` requires rich and raises
    :class:`ImportError` without it.
    """
    plain = render_table(rows, columns, title)
    # Box-drawn cells need a border and a space either side of each column.
    needed = max(len(line) for line in plain.splitlines()) + 2 * len(columns) + 2
    console = _rich_console(file, needed) if use_rich is not False else None
    if console is None:
        if use_rich:
            raise ImportError("rich is not installed")
        (file or sys.stdout).write(plain)
        return
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col.title, justify=col.align, no_wrap=True)
    for line in _cells(rows, columns):
        table.add_row(*line)
    console.print(table)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically (a reader never sees half a file).

    Paths and dataclasses are converted; NaN/inf are refused because JSON has no such
    values and a consumer would choke on them later rather than here.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


_HATCHES = ("", "//", "..", "xx", "\\\\", "--", "++", "oo")
_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


def grouped_bar_chart(
    path: str | os.PathLike[str],
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    xlabel: str,
    missing_label: str = "n/a",
    value_fmt: str = "{:,.0f}",
    spread: Mapping[str, Sequence[tuple[float, float] | None]] | None = None,
) -> Path:
    """Draw a grouped bar chart PNG: one group per category, one bar per series.

    ``series`` maps a series name (a server) to one value per category (``None`` where it was
    not measured); missing bars are marked with ``missing_label`` so an absent competitor is
    visible rather than silently dropped. ``spread`` optionally gives, per series and
    category, the ``(low, high)`` range of repeated measurements, drawn as an error bar.
    Uses matplotlib's Agg backend, so it works without a display.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    for name, values in series.items():
        if len(values) != len(categories):
            raise ValueError(
                f"series {name!r} has {len(values)} values for {len(categories)} categories"
            )
    names = list(series)
    n = max(len(names), 1)
    width = 0.8 / n
    peak = max((v for vals in series.values() for v in vals if v is not None), default=0.0)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 1.1 * len(categories) * n * 0.6), 4.2))
    try:
        for i, name in enumerate(names):
            xs = [c + (i - (n - 1) / 2) * width for c in range(len(categories))]
            values = series[name]
            heights = [v if v is not None else 0.0 for v in values]
            bars = ax.bar(
                xs,
                heights,
                width * 0.95,
                label=name,
                color=_COLOURS[i % len(_COLOURS)],
                hatch=_HATCHES[i % len(_HATCHES)],
                edgecolor="black",
                linewidth=0.6,
            )
            ranges = (spread or {}).get(name) or [None] * len(values)
            for bar, value, span in zip(bars, values, ranges, strict=True):
                top = bar.get_height()
                if value is not None and span is not None:
                    low, high = span
                    ax.errorbar(
                        bar.get_x() + bar.get_width() / 2,
                        value,
                        yerr=[[max(value - low, 0.0)], [max(high - value, 0.0)]],
                        fmt="none",
                        ecolor="black",
                        elinewidth=0.8,
                        capsize=2,
                    )
                    top = max(top, high)
                    peak = max(peak, high)
                text = missing_label if value is None else value_fmt.format(value)
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, top),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90 if n > 3 else 0,
                )
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(0, peak * 1.3 if peak > 0 else 1.0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.grid(axis="y", linestyle=":", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(fontsize=8, frameon=False, ncols=min(n, 4), loc="upper center")
        fig.tight_layout()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=120)
    finally:
        plt.close(fig)
    return target


def ratio(subject: float | None, peer: float | None) -> float | None:
    """``subject / peer``, or ``None`` when either is missing or the peer is not positive.

    ``None`` rather than 0 or inf: "could not compare" must not read as "lost" or "won".
    """
    if subject is None or peer is None or peer <= 0:
        return None
    return subject / peer


def ratios(values: Mapping[str, float | None], subject: str) -> dict[str, float | None]:
    """The subject's value divided by every other entry's value, keyed by the other entry."""
    mine = values.get(subject)
    return {name: ratio(mine, value) for name, value in values.items() if name != subject}


@dataclass(frozen=True)
class Target:
    """A stated goal such as "qps at least 1.3x BIND9" or "RSS under 100 MB".

    ``measured`` is ``None`` when the measurement could not be made; such a target is
    neither met nor failed but *unknown*, and reported as such.
    """

    name: str
    measured: float | None
    threshold: float
    comparison: Literal[">=", "<="]
    unit: str = ""

    @property
    def met(self) -> bool | None:
        """True/False, or ``None`` when nothing was measured."""
        if self.measured is None:
            return None
        if self.comparison == ">=":
            return self.measured >= self.threshold
        return self.measured <= self.threshold

    @property
    def verdict(self) -> str:
        """``"met"``, ``"NOT met"`` or ``"unknown"``."""
        return {True: "met", False: "NOT met", None: "unknown"}[self.met]

    def describe(self) -> str:
        """One line: what was wanted, what was measured, verdict."""
        got = MISSING if self.measured is None else f"{self.measured:.3g}{self.unit}"
        wanted = f"{self.comparison} {self.threshold:g}{self.unit}"
        return f"{self.name}: {wanted}, measured {got} -> {self.verdict}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, including the verdict."""
        return {
            "name": self.name,
            "measured": self.measured,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "unit": self.unit,
            "met": self.met,
        }
