#!/usr/bin/env python
"""Train or profile one roadmap step (or a multirun sweep of them). See README.md.

    python run.py +step=inverted_bottleneck
    python run.py task=profile +step=gelu
    python run.py -m +step=patchify,depthwise seed=0,1
    python run.py -m +step=separate_downsampling "+delta=[silu]" hydra.searchpath=[file://$HOME/my-deltas]
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from modernize.training.cli import run_task, validate_argv
from modernize.design.config import with_run_label


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    from pathlib import Path

    cfg = with_run_label(cfg, hydra_cfg.overrides.task)  # the label the run folder already has
    return run_task(cfg, Path(hydra_cfg.runtime.output_dir), multirun=hydra_cfg.mode == RunMode.MULTIRUN)


if __name__ == "__main__":
    validate_argv(sys.argv)
    main()
