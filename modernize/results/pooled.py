"""A row's seeds pooled into one row, the same way for every table (roadmap, kernel sweep, ablation runs): how many
seeds finished, failed or are unfinished, the top-1 mean and std, the per-seed top-1 that pairs rows in the tests
(modernize.results.stats), the EMA's top-1, the first failure's error, and the mean of any other summary field."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def pool_seeds(results: Sequence[dict], mean_of: Iterable[str] = ()) -> dict[str, Any]:
    """One row from the results of a label's seeds (modernize.training.runs.collect)."""
    ok = [r for r in results if r["status"] == "ok"]
    failed = [r for r in results if r["status"] == "failed"]
    top1 = [r["final_top1"] for r in ok]
    row: dict[str, Any] = {
        "n": len(ok), "failed": len(failed), "unfinished": sum(r["status"] == "unfinished" for r in results),
        "top1_mean": statistics.mean(top1) if top1 else None,
        "top1_std": statistics.stdev(top1) if len(top1) > 1 else (0.0 if top1 else None),
        "top1_seeds": top1, "top1_by_seed": {r.get("seed", i): r["final_top1"] for i, r in enumerate(ok)},
        "ema_top1_mean": ema_top1_mean(ok),
        "error": failed[0].get("error", "") if failed else "",
    }
    for key in mean_of:
        row[key] = mean_or_none(r.get(key) for r in ok)
    return row


def ema_top1_mean(finished: Sequence[dict]) -> float | None:
    """The mean EMA top-1 of a row's finished runs, or None when they have no EMA."""
    values = [r["ema_final_top1"] for r in finished if r.get("ema_final_top1") is not None]
    return sum(values) / len(values) if values else None


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are there, None where none is."""
    present = [v for v in values if v is not None]
    return statistics.mean(present) if present else None


def report_incomplete(rows: Iterable[dict], name: str) -> int:
    """After a table is written: one stderr line per row with failed or unfinished seeds (`name`: the row's label
    key), and the exit status (1 where there are any, 0 otherwise)."""
    bad = [r for r in rows if r["failed"] or r["unfinished"]]
    for r in bad:
        print(f"{r[name]}: {r['failed']} failed, {r['unfinished']} unfinished {r['error']}", file=sys.stderr)
    return 1 if bad else 0


def pooled_curves(curves: dict[str, list[list[dict]]]) -> list[dict[str, Any]]:
    """Learning curves pooled over seeds: {label: [each seed's metrics.jsonl rows]} -> one point per label and
    epoch (labels in the given order, epochs ascending) with the seeds' val top-1 and training loss mean ± std."""
    points = []
    for label, seeds in curves.items():
        by_epoch: dict[int, list[dict]] = {}
        for row in (row for rows in seeds for row in rows):
            by_epoch.setdefault(int(row["epoch"]), []).append(row)
        for epoch in sorted(by_epoch):
            rows = by_epoch[epoch]
            top1, loss = [r["val_top1"] for r in rows], [r["train_loss"] for r in rows]
            points.append({"label": label, "epoch": epoch, "seeds": len(rows), "val_top1_mean": statistics.mean(top1),
                           "val_top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                           "train_loss_mean": statistics.mean(loss),
                           "train_loss_std": statistics.stdev(loss) if len(loss) > 1 else 0.0})
    return points
