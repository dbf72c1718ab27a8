"""The design space, the bottom layer: what a model is (spec, builder, roadmap, Hydra composition, FLOPs, weights)."""
