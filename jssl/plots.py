"""The pictures people look at: augmented views at the start, curves at the end."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # Files only; never needs a display.
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jssl.data import augment
from jssl.data.tf_host import tf


def save_image_grid(path: pathlib.Path, rows: dict[str, np.ndarray]) -> None:
  """One row per entry: ``name -> [N, H, W, C]`` float in [0, 1] (C is 1 or 3)."""
  names = list(rows)
  columns = max(len(images) for images in rows.values())
  fig, axes = plt.subplots(len(names), columns, figsize=(1.3 * columns, 1.4 * len(names)), squeeze=False)
  for r, name in enumerate(names):
    for c in range(columns):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c < len(rows[name]):
        image = np.clip(rows[name][c], 0, 1)
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
      if c == 0:
        ax.set_ylabel(name, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_augmentations(path: pathlib.Path, setup, *, seed: int, count: int = 8) -> None:
  """Source images (resized whole) and what the task makes of each for the model
  (``task.augmentation_rows``: made where training makes it, on the host or in the step)."""
  config = setup.config
  source_rows, host_rows = [], {}
  examples = setup.source.dataset(config.data.train_split).take(count)
  for index, example in enumerate(examples):
    image = augment.to_float_rgb(example["image"], grayscale_to_rgb=config.data.grayscale_to_rgb)
    first = image[0] if image.shape.rank == 4 else image  # a video source's clip [T, H, W, C]: its first frame
    source_rows.append(augment.center_resize(first, image_size=config.data.image_size).numpy())
    for name, value in setup.task.host_example(image, tf.constant([seed, index], tf.int64)).items():
      host_rows.setdefault(name, []).append(value.numpy())
  batch = {name: jnp.asarray(np.stack(rows)) for name, rows in host_rows.items()}
  shown = setup.task.augmentation_rows(batch, jax.random.key(seed))
  save_image_grid(path, {"source": np.stack(source_rows), **{k: np.asarray(v) for k, v in shown.items()}})


def save_curves(path: pathlib.Path, metrics: list[dict]) -> None:
  """Loss (and online-probe accuracy when present) against step."""
  if not metrics:
    return
  keys = [k for k in ("loss", "probe_top1", "images_per_s") if any(k in m for m in metrics)]
  fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
  steps = [m["step"] for m in metrics]
  for ax, key in zip(axes[0], keys):
    ax.plot(steps, [m.get(key, np.nan) for m in metrics])
    ax.set_xlabel("step")
    ax.set_title(key)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
