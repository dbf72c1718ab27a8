"""`make peers`' tables: the paper's comparisons (Table 1: ConvNeXt-T/S/B beside Swin-T/S/B; Table 2: isotropic
ConvNeXt-S/B/L beside DeiT-S/B and ViT-L), from the runs of one sweep, seeds pooled, each pair's difference
ConvNeXt - peer paired by seed (modernize.results.stats.change_between, the one comparison every table makes).

    python -m modernize.peers experiments/runs/peers-cpu-fashion_mnist \\
        --convnext-from experiments/runs/roadmap-cpu-fashion_mnist --out experiments/peers/cpu-fashion_mnist

writes peers.md, peers.csv and peers.png. A ConvNeXt-T with no run of its own in the sweep is the roadmap's
separate_downsampling (`--convnext-from`), where those runs trained the same model with the same settings (the same
spec, recipe, profile and data: everything but the label), as the paper's roadmap ends at ConvNeXt-T. Throughput is
`make bench`'s (measured interleaved, in one process), not the runs' own timings, which ran beside each other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig

from ..design.roadmap import paper, paper_reference
from ..io import atomic_write_text
from ..training.runs import collect
from .columns import PLUS_MINUS, Column, Page, Table, pooled_top1_cell, significance_cell
from .figures import peers_figure
from .pooled import pool_seeds
from .stats import agrees, change_between, paper_change

ROADMAP_CONVNEXT_T = "separate_downsampling"  # the roadmap's last step is ConvNeXt-T


def pairs() -> list[tuple[int, str, str]]:
    """(paper table, ConvNeXt, peer) of every row of Tables 1 and 2 (modernize/reference/paper.yaml: peers)."""
    return [(row["table"], row["beside"], name) for name, row in paper()["peers"].items()]


def same_settings(a: DictConfig, b: DictConfig) -> bool:
    """Whether two runs trained with the same settings (recipe, profile, data, seed, ...): every hashed setting but
    the label and the model."""
    from ..training.identity import HASHED_LABEL_KEY, hashed_settings

    settings = [{k: v for k, v in hashed_settings(c).items() if k not in (HASHED_LABEL_KEY, "model")} for c in (a, b)]
    return settings[0] == settings[1]


def same_training(a: DictConfig, b: DictConfig) -> bool:
    """Whether two runs' configs train the same model the same way: the same spec and settings (the roadmap's
    ConvNeXt-T is `+step=separate_downsampling` on ResNet-50's config; `model=convnext_t` is the same network)."""
    from ..design.config import model_spec

    return same_settings(a, b) and model_spec(a) == model_spec(b)


def peer_beside_roadmap(roadmap: Path, peer: str = "swin_t") -> list[dict]:
    """A peer's finished runs in a peers sweep beside a roadmap sweep (a folder peers-* next to it) that trained with
    the settings of the roadmap's ConvNeXt-T run of the same seed (same_settings): Figure 2's Swin-T line and the
    fidelity line's ConvNeXt-T - Swin-T, from runs of this project rather than the paper's number alone."""
    from omegaconf import OmegaConf

    ours = {r["seed"]: roadmap / r["run_dir"] / "config.yaml" for r in collect(roadmap).get(ROADMAP_CONVNEXT_T, [])
            if r["status"] == "ok" and (roadmap / r.get("run_dir", "") / "config.yaml").is_file()}
    for sweep in sorted(roadmap.parent.glob("peers-*")):
        found = [r for r in collect(sweep).get(peer, []) if r["status"] == "ok" and r.get("seed") in ours
                 and same_settings(OmegaConf.load(ours[r["seed"]]), OmegaConf.load(sweep / r["run_dir"] /
                                                                                   "config.yaml"))]
        if found:
            return found
    return []


def swin_t_row(roadmap: Path) -> list[dict]:
    """Swin-T's seeds pooled into a roadmap-like row ([] without runs beside the roadmap: peer_beside_roadmap)."""
    runs = peer_beside_roadmap(roadmap, "swin_t")
    if not runs:
        return []
    swin_t = paper_reference("swin_t")["top1"]
    # the paper's difference is Table 1's (ConvNeXt-T 82.1 - Swin-T 81.3 = +0.8), not Figure 2's last step's (82.0)
    return [{"label": "swin_t", "paper_top1": swin_t,
             "paper_convnext_t_minus": paper_change(paper_reference("convnext_t")["top1"], swin_t),
             **pool_seeds(runs)}]


def convnext_t_from_roadmap(runs: dict[str, list[dict]], sweep: Path, roadmap: Path | None) -> list[dict]:
    """ConvNeXt-T's results: the sweep's own, else those of the roadmap sweep's separate_downsampling runs that trained
    as `model=convnext_t` would have in this sweep (its runs' profile, data, recipe and train settings; same_training).
    """
    if runs.get("convnext_t") or roadmap is None or not roadmap.is_dir():
        return runs.get("convnext_t", [])
    from omegaconf import OmegaConf

    from ..design.config import compose

    peer_configs = [sweep / r["run_dir"] / "config.yaml" for rs in runs.values() for r in rs if r.get("run_dir")]
    peer_configs = [path for path in peer_configs if path.is_file()]
    if not peer_configs:
        return []
    peer = OmegaConf.load(peer_configs[0])
    taken = []
    for result in collect(roadmap).get(ROADMAP_CONVNEXT_T, []):
        config = roadmap / result.get("run_dir", "") / "config.yaml"
        if result["status"] != "ok" or not config.is_file():
            continue
        convnext_t = OmegaConf.merge(compose(["model=convnext_t", f"seed={result['seed']}"]),
                                     {node: peer[node] for node in ("profile", "data", "recipe", "train")})
        if same_training(OmegaConf.load(config), convnext_t):
            taken.append(result)
    return taken


def peer_rows(sweep: Path, roadmap: Path | None = None) -> list[dict]:
    """One row per pair of Tables 1 and 2 with a finished run on either side."""
    runs = collect(sweep)
    results = dict(runs) | {"convnext_t": convnext_t_from_roadmap(runs, sweep, roadmap)}
    rows = []
    for table, convnext, peer in pairs():
        ours, theirs = results.get(convnext, []), results.get(peer, [])
        if not any(r["status"] == "ok" for r in ours + theirs):
            continue
        a, b = pool_seeds(ours, ("params", "gflops_224")), pool_seeds(theirs, ("params", "gflops_224"))
        change = change_between(a["top1_by_seed"], b["top1_by_seed"])
        paper_a, paper_b = paper_reference(convnext)["top1"], paper_reference(peer)["top1"]
        published = paper_change(paper_a, paper_b)
        rows.append({
            "table": table, "convnext": convnext, "peer": peer,
            "convnext_from": ROADMAP_CONVNEXT_T if convnext == "convnext_t" and not runs.get("convnext_t") else "",
            "convnext_params": a["params"], "peer_params": b["params"],
            "convnext_gflops_224": a["gflops_224"], "peer_gflops_224": b["gflops_224"],
            **{f"convnext_{k}": v for k, v in a.items() if k in ("n", "failed", "unfinished", "top1_mean", "top1_std")},
            **{f"peer_{k}": v for k, v in b.items() if k in ("n", "failed", "unfinished", "top1_mean", "top1_std")},
            "change": change.change, "low": change.low, "high": change.high, "p": change.p,
            "significant": change.significant, "paired_seeds": change.n,
            "paper_convnext_top1": paper_a, "paper_peer_top1": paper_b,
            "paper_change": published, "agrees": agrees(change.change, published),
        })
    return rows


def _side(prefix: str):
    """A side's top-1 cell, as the roadmap's (mean ± std, failures, 'missing')."""
    def cell(r: dict) -> str:
        return pooled_top1_cell({"top1_mean": r[f"{prefix}_top1_mean"], "top1_std": r[f"{prefix}_top1_std"],
                                 "n": r[f"{prefix}_n"], "failed": r[f"{prefix}_failed"],
                                 "unfinished": r[f"{prefix}_unfinished"], "error": ""})
    return cell


def _interval(r: dict) -> str:
    if r.get("change") is None:
        return ""
    text = f"{r['change']:+.2f}"
    return text + (f" [{r['low']:+.2f}, {r['high']:+.2f}]" if r.get("low") is not None else "")


PEERS = Table((
    Column("table"),
    Column("convnext", "ConvNeXt", lambda r: r["convnext"] + (f" (roadmap's {r['convnext_from']})"
                                                              if r["convnext_from"] else ""), align="left", page=True),
    Column("peer", "peer (timm)", align="left", page=True),
    Column("convnext_from", page="ConvNeXt's runs"),
    Column("convnext_params", "params", lambda r: "/".join("-" if r[k] is None else f"{r[k] / 1e6:.0f}M"
                                                           for k in ("convnext_params", "peer_params"))),
    Column("peer_params"),
    Column("convnext_gflops_224", "GFLOPs 224", lambda r: "/".join("-" if r[k] is None else f"{r[k]:.1f}" for k in
                                                                   ("convnext_gflops_224", "peer_gflops_224"))),
    Column("peer_gflops_224"),
    Column("convnext_n", page="ConvNeXt n"), Column("convnext_failed"), Column("convnext_unfinished"),
    Column("convnext_top1_mean", "ConvNeXt top-1", _side("convnext"),
           page=Page("ConvNeXt top-1", ("convnext_top1_mean", "convnext_top1_std"), ".2f", PLUS_MINUS)),
    Column("convnext_top1_std"),
    Column("peer_n", page="peer n"), Column("peer_failed"), Column("peer_unfinished"),
    Column("peer_top1_mean", "peer top-1", _side("peer"),
           page=Page("peer top-1", ("peer_top1_mean", "peer_top1_std"), ".2f", PLUS_MINUS)),
    Column("peer_top1_std"),
    Column("change", "ConvNeXt - peer [95% CI]", _interval, page=Page("ConvNeXt - peer", ("change",), "+.2f")),
    Column("low", page=Page("95% CI", ("low", "high"), "+.2f", ("[", ", ", "]"))), Column("high"),
    Column("p", fmt=".3f", page="p"),
    Column("significant", "significant (p)", significance_cell("p", "significant", "change"), align="left",
           page=Page("significant", ("significant",))),
    Column("paired_seeds"),
    Column("paper_convnext_top1", "paper top-1", lambda r: f"{r['paper_convnext_top1']:.1f} / "
                                                           f"{r['paper_peer_top1']:.1f}",
           page=Page("paper top-1", ("paper_convnext_top1", "paper_peer_top1"), ".1f", ("", " / ", ""))),
    Column("paper_peer_top1"),
    Column("paper_change", "paper change", "+.1f", page=True),
    Column("agrees", "same direction", lambda r: {True: "yes", False: "no", None: ""}[r["agrees"]], align="left",
           page=Page("same direction", ("agrees",))),
), key="peer")


def page(rows: list[dict], sweep: Path) -> str:
    """peers.md: Table 1's rows, then Table 2's, with what they are and the command that made them."""
    parts = [f"# The paper's comparisons: {sweep.name}\n",
             "Produced by `make peers` (`python -m modernize.peers`). Top-1: mean ± std over seeds; ConvNeXt - peer: "
             "the mean per-seed difference with its 95% t-interval and a paired t-test (3+ seeds with some "
             "variance). params and GFLOPs: the paper-scale models at 224 px (fvcore, attention counted).\n"]
    for table, title in ((1, "Table 1: ConvNeXt beside Swin"), (2, "Table 2: isotropic ConvNeXt beside DeiT/ViT")):
        chosen = [r for r in rows if r["table"] == table]
        parts.append(f"## {title}\n\n" + (PEERS.markdown(chosen) if chosen else "No runs of this table's pairs.\n"))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modernize.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="the peers sweep's folder (make peers)")
    parser.add_argument("--convnext-from", type=Path, default=None,
                        help="a roadmap sweep whose separate_downsampling runs stand for ConvNeXt-T where they trained "
                             "the same way")
    parser.add_argument("--out", type=Path, required=True, help="folder for peers.md, peers.csv and peers.png")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"error: {args.sweep} is not a sweep folder (make peers writes experiments/runs/peers-<profile>-<data>)",
              file=sys.stderr)
        return 2
    rows = peer_rows(args.sweep, args.convnext_from)
    atomic_write_text(args.out / "peers.md", page(rows, args.sweep))
    atomic_write_text(args.out / "peers.csv", PEERS.csv(rows))
    peers_figure(rows, args.out / "peers.png", f"The paper's comparisons: {args.sweep.name}")
    print(page(rows, args.sweep))
    return 0
