"""Data: data sets and their transforms (the official timm pipeline for folders, batched on-device augmentation)."""
