"""Training: how a run trains a model (the loop, its step, recipes, profiles, processes, checkpoints, W&B)."""
