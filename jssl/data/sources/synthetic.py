"""Seeded random blocky colour images with learnable classes, for benchmarks and tests:
spec ``"synthetic"``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jssl.data.sources.base import ArraySource, Source
from jssl.errors import ConfigError

__all__ = ["synthetic_source"]


def synthetic_source(shape: Sequence[int], examples: int, classes: int, seed: int) -> Source:
  """``examples`` "train" images uint8 ``shape`` (H, W, C) in ``classes`` classes, and a quarter as many
  "test" images (at least one), all a pure function of ``seed``."""
  shape = tuple(int(d) for d in shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ConfigError(f"synthetic_shape must be (H, W, C) of positive ints, got {shape}.")
  if examples < 1 or classes < 1:
    raise ConfigError(f"synthetic_examples and synthetic_classes must be >= 1, got {examples} and {classes}.")
  # "test" is a quarter of "train", but never empty so evaluation code has something to run on.
  counts = {"train": examples, "test": max(1, examples // 4)}

  def load(split):
    # Each split has its own stream so "test" isn't a prefix of "train".
    rng = np.random.default_rng([seed, ("train", "test").index(split)])
    labels = rng.integers(0, classes, size=counts[split]).astype(np.int32)
    # Blocky 4x4 colour layouts, a class template plus an image's own variation: unlike
    # white noise, two crops of one image share colours, so a contrastive model can learn
    # (tests need a loss that falls), and the classes are separable by a probe.
    templates = np.random.default_rng([seed, 2]).random((classes, 4, 4, shape[-1]))
    low = 0.6 * templates[labels] + 0.4 * rng.random((counts[split], 4, 4, shape[-1]))
    rows, cols = np.arange(shape[0]) * 4 // shape[0], np.arange(shape[1]) * 4 // shape[1]
    images = low[:, rows][:, :, cols]
    return np.round(images * 255).astype(np.uint8), labels

  return ArraySource(
    name="synthetic",
    num_classes=classes,
    channels=shape[-1],
    image_shape=shape,
    splits=("train", "test"),
    load=load,
    count=counts.__getitem__,
  )
