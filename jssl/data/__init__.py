"""Data sources, host augmentation and the per-process input pipeline."""
