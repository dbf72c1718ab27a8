"""Hydra plugin: $MODERNIZE_CONFIG_PATH on the config search path (see modernize_searchpath.py)."""
