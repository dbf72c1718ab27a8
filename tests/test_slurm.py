"""The SLURM launcher config composes with the real hydra-submitit-launcher plugin (no cluster needed)."""

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

from modernize.design.config import CONF_DIR


def test_slurm_launcher_composes_with_nodes_gpus_and_one_task_per_gpu():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "+step=gelu", "profile=imagenet",
                                           "hydra.launcher.nodes=2", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert launcher.nodes == 2 and launcher.partition == "gpu"
    assert launcher.tasks_per_node == launcher.gpus_per_node == 8
    assert launcher.max_num_timeout > 0  # timed-out jobs are requeued and resume from last.pt
    assert cfg.label == "gelu" and cfg.profile.name == "imagenet"


def test_joblib_launcher_composes_for_local_parallel_sweeps():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher.n_jobs == 2 and "Joblib" in cfg.hydra.launcher._target_
