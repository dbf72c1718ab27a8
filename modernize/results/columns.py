"""Tables declared once: each column's CSV name, markdown header and cell, and how the report page shows it.

A table is a `Table` of `Column`s. The CSV has every column with a `name`, the markdown every column with a
`header`, both in the order declared, so the two never drift apart. A column may be CSV only (no header: e.g.
a standard deviation the markdown writes inside the mean's cell) or markdown only (no name: e.g. a difference
of two CSV columns). The markdown is drawn by the `tabulate` library as a pipe table (GitHub markdown, with
alignment marks).

The report page (modernize.results.report) shows a table from its CSV file, so that every number on the page is
one of the CSV's: a column with `page` set is shown there, in the table's `page_order`. `page=True` shows it as the
markdown does (its header and format), `page="p"` under another header; a `Page` says everything (the CSV fields a
cell shows, their number format and what joins them). The sweep's W&B table holds the CSV's values
(Table.records), so W&B, the CSV and the page never format a number differently.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CSV_DIGITS = 4  # floats in a CSV are rounded to this many decimals


@dataclass(frozen=True)
class Page:
    """How the report page shows a column: `header` there; `fields`, the CSV fields in the cell (default: the
    column's name), each a number formatted by `fmt` ("" shows the CSV text; True/False show as yes/no); `joined`,
    the text before, between and after the fields (a mean and its std: ("", " ± ", ""))."""

    header: str
    fields: tuple[str, ...] = ()
    fmt: str = ""
    joined: tuple[str, str, str] = ("", "", "")


@dataclass(frozen=True)
class Column:
    """One column: `name` in the CSV, `header` in the markdown, `page` on the report (True: as in the markdown; a
    string: under that header; a Page); `key`, the row key it reads (default: `name`; a committed CSV keeps its field
    name where the code's word for it changed, e.g. roadmap.csv's "delta" is a row's top-1 "change").

    `fmt` makes the markdown cell: a format spec applied to row[key] (`missing` where it is None), or a function of
    the whole row for cells that combine several values.
    """

    name: str | None
    header: str | None = None
    fmt: str | Callable[[dict], str] = ""
    align: Literal["left", "right"] = "right"
    optional: bool = False  # in the markdown only when some row has a value (always in the CSV)
    page: Page | bool | str | None = None
    key: str | None = None
    missing: str = ""  # the markdown cell of a row without a value

    @property
    def row_key(self) -> str | None:
        return self.key or self.name

    @property
    def page_view(self) -> Page | None:
        """How the report page shows the column (None: not at all)."""
        if isinstance(self.page, Page) or not self.page:
            return self.page or None
        header = self.page if isinstance(self.page, str) else self.header or self.name
        return Page(header, (self.name,), self.fmt if isinstance(self.fmt, str) else "")

    def cell(self, row: dict) -> str:
        if callable(self.fmt):
            return self.fmt(row)
        value = row.get(self.row_key) if self.row_key else None
        return self.missing if value is None else format(value, self.fmt)

    def value(self, row: dict) -> Any:
        """The CSV value: the row's own, floats rounded to CSV_DIGITS, True/False as text (None writes as an empty
        field)."""
        value = row.get(self.row_key)
        if isinstance(value, bool):
            return str(value)
        return round(value, CSV_DIGITS) if isinstance(value, float) else value


@dataclass(frozen=True)
class Table:
    """A table's columns, the CSV field that keys its rows, and the order of its columns on the report page (their
    names; default: as declared)."""

    columns: tuple[Column, ...]
    key: str
    page_order: tuple[str, ...] = ()

    @property
    def csv_names(self) -> list[str]:
        return [c.name for c in self.columns if c.name is not None]

    def records(self, rows: Iterable[dict]) -> list[list[Any]]:
        """The CSV's values of each row, in csv_names' order (the sweep's W&B table holds these)."""
        named = [c for c in self.columns if c.name is not None]
        return [[c.value(r) for c in named] for r in rows]

    def markdown(self, rows: Iterable[dict]) -> str:
        """A pipe table (GitHub markdown) of the columns with a header; "|" in a cell is escaped."""
        from tabulate import tabulate

        rows = list(rows)
        shown_columns = markdown_columns(self.columns, rows)
        body = [[c.cell(r).replace("|", r"\|") for c in shown_columns] for r in rows]
        return tabulate(body, headers=[c.header for c in shown_columns], tablefmt="pipe", disable_numparse=True,
                        colalign=[c.align for c in shown_columns]) + "\n"

    def csv(self, rows: Iterable[dict], lineterminator: str = "\n") -> str:
        """The CSV of the columns with a name, header line first."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator=lineterminator)
        writer.writerow(self.csv_names)
        writer.writerows(self.records(rows))
        return buf.getvalue()

    def page_columns(self) -> list[Page]:
        by_name = {c.name: c.page_view for c in self.columns if c.page_view is not None}
        order = self.page_order or tuple(by_name)
        return [by_name[name] for name in order]

    def page_rows(self, csv_rows: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
        """The report page's rows of this table from its CSV's rows: each row's key and cells, a cell None where
        it is empty, else whether it is numeric, its fields' (name, text) and what joins them."""
        pages = self.page_columns()
        return [{"key": row[self.key], "cells": [page_cell(page, row) for page in pages]} for row in csv_rows]


def page_cell(page: Page, row: dict[str, str]) -> dict[str, Any] | None:
    parts = [(name, page_text(row.get(name, ""), page.fmt)) for name in page.fields]
    if all(text == "" for _, text in parts):
        return None
    numeric = bool(page.fmt) and all(is_number(text) for _, text in parts if text)
    return {"numeric": numeric, "parts": parts, "joined": page.joined}


def page_text(value: str, fmt: str) -> str:
    """A CSV field as the page shows it."""
    if value == "":
        return ""
    if value in ("True", "False"):
        return "yes" if value == "True" else "no"
    if fmt:
        try:
            return format(float(value), fmt)
        except ValueError:
            return value
    return value


def is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def markdown_columns(columns: Iterable[Column], rows: Sequence[dict] = ()) -> list[Column]:
    return [c for c in columns if c.header is not None
            and (not c.optional or any(r.get(c.row_key) is not None for r in rows))]


# ------------------------------------------------------------------------------------ cells several tables share
def pooled_top1_cell(r: dict) -> str:
    """The top-1 of a row that pools a run's seeds: mean ± std (the mean alone for one seed), with the number of
    failed seeds; without a finished seed, why: the first failure's error, "unfinished" or "missing" (not started)."""
    if r["top1_mean"] is None:
        if r["failed"]:
            return f"failed: {r['error']}"
        return "unfinished" if r["unfinished"] else "missing"
    top1 = f"{r['top1_mean']:.2f} ± {r['top1_std']:.2f}" if r["n"] > 1 else f"{r['top1_mean']:.2f}"
    return top1 + (f" ({r['failed']} failed)" if r["failed"] else "")


PLUS_MINUS = ("", " ± ", "")


def pooled_top1_columns(header: str) -> tuple[Column, ...]:
    """The columns of a seed-pooled row's outcome (roadmap and ablation tables alike): seeds finished, failed and
    unfinished, and the top-1 mean ± std under `header`."""
    return (Column("n", "n", page=True), Column("failed", page=True), Column("unfinished", page=True),
            Column("top1_mean", header, pooled_top1_cell,
                   page=Page(header, ("top1_mean", "top1_std"), ".2f", PLUS_MINUS)),
            Column("top1_std"))


def significance_cell(p_key: str, significant_key: str, change_key: str) -> Callable[[dict], str]:
    """'yes (0.012)' / 'no (0.300)' for a row's test; 'not tested' where there is a change but nothing to test it on
    (fewer than 3 seeds, or no variance: modernize.results.stats)."""
    def cell(r: dict) -> str:
        if r.get(p_key) is None:
            return "" if r.get(change_key) is None else "not tested"
        return f"{'yes' if r[significant_key] else 'no'} ({r[p_key]:.3f})"
    return cell


# The EMA's top-1 beside the model's, where a run has an EMA (the recipe's, as the profile's ema_rule trains it).
EMA_TOP1 = Column("ema_top1_mean", "EMA top-1", ".2f", optional=True)
EMA_NOTE = ("'EMA top-1' is the final-epoch top-1 of the weights' exponential moving average (the recipe's EMA, "
            "as the profile's ema_rule trains it; mean over seeds). The paper's released ConvNeXt-T (82.1) is an EMA "
            "model, so compare it with that column; changes, tests and fidelity use the model's own top-1, which "
            "every step has (the original recipe has no EMA): docs/recipe.md.")


def has_ema(rows: Iterable[dict]) -> bool:
    return any(r.get("ema_top1_mean") is not None for r in rows)


def one_row_csv(names: Iterable[str], record: dict) -> str:
    """A one-row CSV of a summary record (fidelity.csv, trend.csv)."""
    return Table(tuple(Column(name) for name in names), key="").csv([record])
