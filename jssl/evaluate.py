"""Frozen-encoder evaluation of a pretraining run: linear probe and weighted kNN.

``evaluate(workdir)`` restores the run's encoder, extracts features of the train and
eval splits (whole images resized, no augmentation, batch norm in inference mode) of
``eval.source`` when it is set (e.g. images for a video-pretrained encoder), else of
``data.source``, and reports, next to each other, what pretraining bought:

* ``linear_top1`` / ``knn_top1``: the pretrained encoder,
* ``random_init_linear_top1`` / ``random_init_knn_top1``: the same architecture at random init,
* ``raw_pixels_linear_top1`` / ``raw_pixels_knn_top1``: the pixels themselves.

Linear probes run on standardised features (train statistics); kNN is cosine, k=200,
temperature 0.1 (InstDisc), on the features as they are.
"""

import json
import logging
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jssl import config as config_lib
from jssl import probes
from jssl.data import pipeline
from jssl.data.sources import source_from_config
from jssl.data.video import is_video
from jssl.tasks import build_encoder
from jssl.train import make_setup, read_run_config, restore_run

log = logging.getLogger("jssl")


def extract_features(encoder, variables, dataset, *, batch_size: int, limit: int = 0, desc: str = "features",
                     forward=None):
  """Encoder features of every batch of ``dataset`` (``{"image", "label"}``).

  Returns ``(features float32 [N, F], labels int32 [N])``. The last, short batch is padded
  to ``batch_size`` so the forward pass compiles once; pass the same jitted ``forward(variables,
  images)`` to several calls to compile it once for all of them.
  """
  forward = forward or jax.jit(lambda v, x: encoder.apply(v, x, train=False))
  features, labels, count = [], [], 0
  for batch in tqdm(dataset.as_numpy_iterator(), desc=desc, unit="batch", leave=False):
    n = len(batch["label"])
    images = np.pad(batch["image"], [(0, batch_size - n)] + [(0, 0)] * 3) if n < batch_size else batch["image"]
    features.append(np.asarray(forward(variables, images))[:n])
    labels.append(batch["label"])
    count += n
    if limit and count >= limit:
      break
  features, labels = np.concatenate(features), np.concatenate(labels)
  return (features[:limit], labels[:limit]) if limit else (features, labels)


def raw_pixels(source, split: str, *, limit: int = 0):
  """Source images flattened to ``[N, H*W*C]`` float32 in [0, 1] (needs a fixed image shape)."""
  images, labels = [], []
  for batch in source.dataset(split).batch(4096).as_numpy_iterator():
    images.append(batch["image"].reshape(len(batch["image"]), -1).astype(np.float32) / 255)
    labels.append(batch["label"])
    if limit and sum(map(len, labels)) >= limit:
      break
  images, labels = np.concatenate(images), np.concatenate(labels)
  return (images[:limit], labels[:limit]) if limit else (images, labels)


def probe_scores(train, test, *, num_classes: int, config) -> dict:
  """Linear-probe and kNN top-1 on ``(features, labels)`` pairs."""
  train_x, test_x = probes.standardize(train[0], test[0])
  linear = probes.linear_probe(train_x, train[1], test_x, test[1], num_classes=num_classes,
                               epochs=config.linear_epochs, learning_rate=config.linear_lr,
                               weight_decay=config.linear_weight_decay)
  knn = probes.knn_top1(train[0], train[1], test[0], test[1], num_classes=num_classes, k=config.knn_k,
                        temperature=config.knn_temperature)
  return {"linear_top1": linear["top1"], "knn_top1": knn}


def evaluate(workdir: str | pathlib.Path, *, step: int | None = None, overrides: list[str] = ()) -> dict:
  """Evaluates the run in ``workdir`` (latest checkpoint unless ``step``); writes ``eval.json``.

  ``overrides`` (``["--config.eval.max_train_examples=10000", ...]``) change the run's
  ``eval`` settings for this evaluation only; other sections describe the trained model.
  """
  workdir = pathlib.Path(workdir).resolve()
  config = read_run_config(workdir)
  for override in overrides:
    if not override.startswith("--config.eval."):
      raise ValueError(f"{override}: jssl eval takes only --config.eval.* overrides; the other settings are the "
                       "run's own.")
  config_lib.apply_overrides(config, list(overrides))
  setup = make_setup(config)
  source = setup.source
  if config.eval.source:  # e.g. images for an encoder pretrained on clips (video sources yield no images)
    data = config.data.copy_and_resolve_references()
    data.source = config.eval.source
    source = source_from_config(data, seed=config.seed)
  elif is_video(source):
    raise ValueError(f"Source {source.name!r} yields clips, not images: set eval.source to an image source (e.g. "
                     "fashion_mnist) in the pretraining config (or in the workdir's config.json).")
  num_classes = source.num_classes
  if not num_classes:
    raise ValueError(f"Source {source.name!r} has no labels, so there is nothing to probe.")
  started = time.perf_counter()
  state, step = restore_run(setup, workdir, step=step)

  encoder = build_encoder(config)
  size, ev = config.data.image_size, config.eval
  limit = ev.max_train_examples

  def dataset(split):
    return pipeline.eval_dataset(source, split=split, batch_size=ev.batch_size, image_size=size,
                                 grayscale_to_rgb=config.data.grayscale_to_rgb)

  pretrained = setup.task.encoder_variables(state.params, state.batch_stats)
  channels = 3 if config.data.grayscale_to_rgb else source.channels
  # Jitted: a ViT initialised op by op took seconds.
  random_init = jax.jit(lambda key: encoder.init(key, jnp.zeros((1, size, size, channels)), train=False))(
      jax.random.key(config.seed + 1))
  forward = jax.jit(lambda v, x: encoder.apply(v, x, train=False))
  results = {"step": int(step)}
  for name, variables in (("", pretrained), ("random_init_", random_init)):
    train = extract_features(encoder, variables, dataset(config.data.train_split), batch_size=ev.batch_size,
                             limit=limit, desc=f"{name or 'pretrained_'}train", forward=forward)
    test = extract_features(encoder, variables, dataset(config.data.eval_split), batch_size=ev.batch_size,
                            desc=f"{name or 'pretrained_'}test", forward=forward)
    for key, value in probe_scores(train, test, num_classes=num_classes, config=ev).items():
      results[name + key] = value
  if source.image_shape is not None:
    train = raw_pixels(source, config.data.train_split, limit=limit)
    test = raw_pixels(source, config.data.eval_split)
    for key, value in probe_scores(train, test, num_classes=num_classes, config=ev).items():
      results["raw_pixels_" + key] = value
  results.update(num_train=int(len(train[1])), num_test=int(len(test[1])),
                 eval_seconds=round(time.perf_counter() - started, 1))
  (workdir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
  print(format_table(results))
  return results


def format_table(results: dict) -> str:
  """The results as a small text table, one row per representation."""
  rows = [("pretrained encoder", ""), ("same encoder, random init", "random_init_"), ("raw pixels", "raw_pixels_")]
  lines = [f"{'features':<28}{'linear top-1':>14}{'kNN top-1':>12}", "-" * 54]
  for label, prefix in rows:
    if prefix + "linear_top1" in results:
      lines.append(f"{label:<28}{results[prefix + 'linear_top1']:>14.4f}{results[prefix + 'knn_top1']:>12.4f}")
  lines.append(f"(step {results['step']}, {results['num_train']} train / {results['num_test']} test examples)")
  return "\n".join(lines)
