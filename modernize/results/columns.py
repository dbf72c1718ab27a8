"""Tables declared once: each column's CSV name, markdown header and cell format, rendered to markdown and CSV.

A table is a sequence of `Column`s. The CSV has every column with a `name`, the markdown every column with a
`header`, both in the order declared, so the two never drift apart. A column may be CSV only (no header: e.g.
a standard deviation the markdown writes inside the mean's cell) or markdown only (no name: e.g. a difference
of two CSV columns). The markdown is drawn by the `tabulate` library as a pipe table (GitHub markdown, with
alignment marks).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CSV_DIGITS = 4  # floats in a CSV are rounded to this many decimals


@dataclass(frozen=True)
class Column:
    """One column: `name` in the CSV (and the row key it reads), `header` in the markdown.

    `fmt` makes the markdown cell: a format spec applied to row[name] (None gives an empty cell), or a function
    of the whole row for cells that combine several values.
    """

    name: str | None
    header: str | None = None
    fmt: str | Callable[[dict], str] = ""
    align: Literal["left", "right"] = "right"
    optional: bool = False  # in the markdown only when some row has a value (always in the CSV)

    def cell(self, row: dict) -> str:
        if callable(self.fmt):
            return self.fmt(row)
        value = row.get(self.name) if self.name else None
        return "" if value is None else format(value, self.fmt)

    def value(self, row: dict) -> Any:
        """The CSV value: the row's own, floats rounded to CSV_DIGITS (None writes as an empty field)."""
        value = row.get(self.name)
        return round(value, CSV_DIGITS) if isinstance(value, float) else value


def pooled_top1_cell(r: dict) -> str:
    """The top-1 of a row that pools a run's seeds: mean ± std (the mean alone for one seed), with the number of
    failed seeds; without a finished seed, why: the first failure's error, "unfinished" or "missing" (not started)."""
    if r["top1_mean"] is None:
        if r["failed"]:
            return f"failed: {r['error']}"
        return "unfinished" if r["unfinished"] else "missing"
    top1 = f"{r['top1_mean']:.2f} ± {r['top1_std']:.2f}" if r["n"] > 1 else f"{r['top1_mean']:.2f}"
    return top1 + (f" ({r['failed']} failed)" if r["failed"] else "")


def pooled_top1_columns(header: str) -> tuple[Column, ...]:
    """The columns of a seed-pooled row's outcome (roadmap and ablation tables alike): seeds finished, failed and
    unfinished, and the top-1 mean ± std under `header`."""
    return (Column("n", "n"), Column("failed"), Column("unfinished"),
            Column("top1_mean", header, pooled_top1_cell), Column("top1_std"))


# The EMA's top-1 beside the model's, where a run has an EMA (the recipe's, as the profile's ema_rule trains it).
EMA_TOP1 = Column("ema_top1_mean", "EMA top-1", ".2f", optional=True)
EMA_NOTE = ("'EMA top-1' is the final-epoch top-1 of the weights' exponential moving average (the recipe's EMA, "
            "as the profile's ema_rule trains it; mean over seeds). The paper's released ConvNeXt-T (82.1) is an EMA "
            "model, so compare it with that column; changes, tests and fidelity use the model's own top-1, which "
            "every step has (the original recipe has no EMA): docs/recipe.md.")


def ema_top1_mean(finished_runs: Sequence[dict]) -> float | None:
    """The mean EMA top-1 of a row's finished runs, or None when they have no EMA."""
    values = [r["ema_final_top1"] for r in finished_runs if r.get("ema_final_top1") is not None]
    return sum(values) / len(values) if values else None


def has_ema(rows: Iterable[dict]) -> bool:
    return any(r.get("ema_top1_mean") is not None for r in rows)


def csv_names(columns: Iterable[Column]) -> list[str]:
    return [c.name for c in columns if c.name is not None]


def markdown_columns(columns: Iterable[Column], rows: Sequence[dict] = ()) -> list[Column]:
    return [c for c in columns if c.header is not None
            and (not c.optional or any(r.get(c.name) is not None for r in rows))]


def to_markdown(columns: Sequence[Column], rows: Iterable[dict]) -> str:
    """A pipe table (GitHub markdown) of the columns with a header; "|" in a cell is escaped."""
    from tabulate import tabulate

    rows = list(rows)
    shown = markdown_columns(columns, rows)
    body = [[c.cell(r).replace("|", r"\|") for c in shown] for r in rows]
    return tabulate(body, headers=[c.header for c in shown], tablefmt="pipe", disable_numparse=True,
                    colalign=[c.align for c in shown]) + "\n"


def to_csv(columns: Sequence[Column], rows: Iterable[dict], lineterminator: str = "\n") -> str:
    """The CSV of the columns with a name, header line first."""
    named = [c for c in columns if c.name is not None]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow([c.name for c in named])
    writer.writerows([c.value(r) for c in named] for r in rows)
    return buf.getvalue()
