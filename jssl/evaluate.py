"""Judging encoders: frozen-encoder linear probe and weighted kNN of a run, and held-out
reconstructions during training (``Holdout``).

``evaluate(workdir)`` restores the run's encoder, extracts features of the train and
eval splits (``data.train_split``; ``eval.split``, else ``data.eval_split``) of
``eval.source`` when it is set (e.g. images for a video-pretrained encoder), else of
``data.source`` (whole images resized, no augmentation, batch norm in inference mode),
and reports, next to each other, what pretraining bought:

* ``linear_top1`` / ``knn_k200_top1`` / ``knn_k20_top1``: the pretrained encoder,
* ``random_init_linear_top1`` / ``random_init_knn_k200_top1`` / ...: the same architecture at random init,
* ``raw_pixels_linear_top1`` / ``raw_pixels_knn_k200_top1`` / ...: the pixels themselves.

The linear probe (``eval.protocol=converged``, the default) is logistic regression on
standardised features (train statistics) solved to its optimum, its L2 strength chosen on a
held-out part of the train split (``probes.linear_probe``; ``linear_l2``, ``linear_iterations``,
``linear_loss`` ... say how it ended). ``eval.protocol=paper`` replaces it with the papers' SGD
on augmented images (``jssl.linear_eval``; ``linear_epochs``, ``linear_optimizer`` ... say how
it ran); ``eval.json``'s ``"protocol"`` names the one used. kNN is cosine with
temperature 0.1 (InstDisc) on the features as they are, at k=200 (InstDisc, solo-learn) and k=20
(lightly's choice for small sets).

With ``eval.pictures`` (the default) it also draws ``neighbours.png``, ``embedding.png`` and
``summary.png`` in the workdir (``jssl.eval_pictures``), and every evaluation appends its
scores to ``eval_history.jsonl``, whose several steps ``summary.png`` plots against
pretraining time.

The encoder comes from the checkpoint alone: the run's state is rebuilt from the data facts
its ``config.json`` recorded (``jssl.workdir.run_setup``), so the training data need not be
on this machine. The probes need labelled images: those of ``eval.source`` or ``data.source``,
read where ``--config.data.dir=DIR`` says when the data has moved (for a folder source,
``image_folder:PATH``, DIR replaces PATH).
"""

import json
import logging
import pathlib
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from jssl import config as config_lib
from jssl import linear_eval, parallel, probes
from jssl.data import pipeline
from jssl.data.sources import source_from_config
from jssl.data.video import is_video
from jssl.errors import ConfigError, MissingError
from jssl.models import build_encoder, random_init
from jssl.train import Setup, TrainState, to_host
from jssl.workdir import read_metrics, read_run_config, restore_run, run_setup

log = logging.getLogger("jssl")


def extract_features(
  encoder, variables, dataset, *, batch_size: int, limit: int = 0, desc: str = "features", forward=None
):
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


def probe_scores(train, test, *, num_classes: int, config, linear: bool = True) -> dict:
  """Linear-probe and kNN scores on ``(features, labels)`` pairs, keyed as in ``eval.json``.

  ``linear_top1`` (test), ``linear_l2`` (chosen on part of the train split), ``linear_val_top1``,
  ``linear_train_top1``, ``linear_loss``, ``linear_grad_norm``, ``linear_iterations``,
  ``linear_converged`` (not with ``linear=False``); ``knn_k{k}_top1`` for each k in ``config.knn_ks``.
  """
  scores = {}
  if linear:
    scores = _converged_linear(train, test, num_classes=num_classes, config=config)
  knn = probes.knn_top1s(
    *train, *test, num_classes=num_classes, ks=tuple(config.knn_ks), temperature=config.knn_temperature
  )
  scores.update({f"knn_k{k}_top1": top1 for k, top1 in knn.items()})
  return scores


def _converged_linear(train, test, *, num_classes: int, config) -> dict:
  train_x, test_x = probes.standardize(train[0], test[0])
  linear = probes.linear_probe(
    train_x,
    train[1],
    test_x,
    test[1],
    num_classes=num_classes,
    l2_grid=tuple(config.linear_l2_grid),
    val_fraction=config.linear_val_fraction,
    max_iter=config.linear_max_iter,
    tol=config.linear_tol,
  )
  return {f"linear_{key}": value for key, value in linear.items()}


EVAL_OVERRIDES = ("--config.eval.", "--config.data.dir=")
"""What ``jssl eval`` may change: its own settings, and where the data is now."""

FOLDER_SOURCES = ("image_folder", "video_folder")


def moved_to(spec: str, data_dir: str) -> str:
  """``spec`` for data that now lives in ``data_dir``: a folder source's own path gives way
  to ``data_dir`` (``image_folder:/old`` -> ``image_folder``); other specs are unchanged."""
  kind, _, path = spec.partition(":")
  return kind if data_dir and path and kind in FOLDER_SOURCES else spec


def probe_splits(source, config) -> tuple[str, str]:
  """The splits of ``source`` the probes fit on (``data.train_split``) and are scored on
  (``eval.split``, else ``data.eval_split``); raises ConfigError, naming the splits there are,
  when ``source`` lacks either."""
  train_split, test_split = config.data.train_split, config.eval.split or config.data.eval_split
  if train_split not in source.splits:
    raise ConfigError(
      f"Source {source.name!r} has no {train_split!r} split (data.train_split) to fit the probes on; its splits "
      f"are {source.splits}. Point --config.eval.source=SPEC at a source with one."
    )
  if test_split not in source.splits:
    others = [s for s in source.splits if s != train_split]
    hint = (
      f"--config.eval.split={others[0]}"
      if others
      else f"--config.eval.split={train_split} (scores on the images the probes fit: an upper bound)"
    )
    raise ConfigError(
      f"Source {source.name!r} has no {test_split!r} split to score the probes on; its splits are "
      f"{source.splits}. Name one with {hint}, or give the data a {test_split!r} split (for a folder source: "
      f"sub-folders train/ and {test_split}/)."
    )
  if test_split == train_split:
    log.warning("Scoring the probes on %r, the split they fit on: the scores are an upper bound.", test_split)
  return train_split, test_split


def evaluate(workdir: str | pathlib.Path, *, step: int | None = None, overrides: list[str] = ()) -> dict:
  """Evaluates the run in ``workdir`` (latest checkpoint unless ``step``); writes ``eval.json``.

  ``overrides`` (``["--config.eval.max_train_examples=10000", ...]``) change the run's
  ``eval`` settings for this evaluation only, and ``--config.data.dir=DIR`` says where the
  probes' data is now; other sections describe the trained model.
  """
  workdir = pathlib.Path(workdir).resolve()
  config = read_run_config(workdir)
  for override in overrides:
    if not override.startswith(EVAL_OVERRIDES):
      raise ConfigError(
        f"{override}: jssl eval takes only --config.eval.* overrides and --config.data.dir=DIR (where the data "
        "is now); the other settings are the run's own."
      )
  config_lib.apply_overrides(config, list(overrides))
  config_lib.validate(config, only=("eval",))  # the settings this evaluation may change
  if any(override.startswith("--config.data.dir=") for override in overrides):
    config.data.source = moved_to(config.data.source, config.data.dir)
    config.eval.source = moved_to(config.eval.source, config.data.dir)
  setup = run_setup(workdir, config)  # no data read: the run's recorded facts shape its state
  if not config.eval.source and is_video(setup.source):
    raise ConfigError(
      f"Source {setup.source.name!r} yields clips, not images: set eval.source to an image source (e.g. "
      "fashion_mnist) in the pretraining config (or in the workdir's config.json)."
    )
  data = config.data.copy_and_resolve_references()
  if config.eval.source:  # e.g. images for an encoder pretrained on clips (video sources yield no images)
    data.source = config.eval.source
  try:
    source = source_from_config(data, seed=config.seed)
  except MissingError as error:  # the first line says what is missing; a one-line fix follows
    raise MissingError(
      f"The probes' data is not here ({str(error).splitlines()[0]}); point --config.data.dir=DIR "
      "(or --config.eval.source=SPEC) at a copy of it."
    ) from error
  num_classes = source.num_classes
  if not num_classes:
    raise ConfigError(f"Source {source.name!r} has no labels, so there is nothing to probe.")
  train_split, test_split = probe_splits(source, config)
  started = time.perf_counter()
  state, step = restore_run(setup, workdir, step=step)

  encoder = build_encoder(config)
  size, ev = config.data.image_size, config.eval
  limit = ev.max_train_examples

  def dataset(split):
    return pipeline.eval_dataset(
      source, split=split, batch_size=ev.batch_size, image_size=size, grayscale_to_rgb=config.data.grayscale_to_rgb
    )

  pretrained = setup.task.encoder_variables(state.params, state.batch_stats, state.extra)
  channels = 3 if config.data.grayscale_to_rgb else source.channels
  forward = jax.jit(lambda v, x: encoder.apply(v, x, train=False))
  paper = ev.protocol == "paper"
  results = {"step": int(step), "protocol": ev.protocol}

  def paper_probe(name, features_of):
    """The papers' linear evaluation (``jssl.linear_eval``) on ``features_of(images)``."""
    return linear_eval.paper_linear_probe(
      jax.jit(features_of),
      source,
      train_split=train_split,
      test_split=test_split,
      image_size=size,
      grayscale_to_rgb=config.data.grayscale_to_rgb,
      num_classes=num_classes,
      batch_size=ev.batch_size,
      epochs=ev.paper_epochs,
      lr=ev.paper_lr,
      seed=config.seed,
      desc=f"{name or 'pretrained_'}linear (paper)",
    )

  kept = {}  # the pretrained encoder's and the raw pixels' (train, test) for the pictures
  encoders = [("", pretrained)]
  # Baselines off: only the pretrained encoder (e.g. a run's earlier checkpoints, whose
  # random-init and raw-pixel scores would be the same each time).
  if ev.baselines:
    encoders.append(("random_init_", random_init(encoder, image_size=size, channels=channels, seed=config.seed + 1)))
  for name, variables in encoders:
    train = extract_features(
      encoder,
      variables,
      dataset(train_split),
      batch_size=ev.batch_size,
      limit=limit,
      desc=f"{name or 'pretrained_'}train",
      forward=forward,
    )
    test = extract_features(
      encoder,
      variables,
      dataset(test_split),
      batch_size=ev.batch_size,
      desc=f"{name or 'pretrained_'}test",
      forward=forward,
    )
    if not name:
      kept["features"] = (train, test)
    scores = probe_scores(train, test, num_classes=num_classes, config=ev, linear=not paper)
    if paper:
      scores.update(paper_probe(name, lambda x, v=variables: encoder.apply(v, x, train=False)))
    for key, value in scores.items():
      results[name + key] = value
  if source.image_shape is not None and ev.baselines:
    train = raw_pixels(source, train_split, limit=limit)
    test = raw_pixels(source, test_split)
    kept["raw pixels"] = (train, test)
    scores = probe_scores(train, test, num_classes=num_classes, config=ev, linear=not paper)
    if paper:  # the same crops and flips, of the run's image size, flattened
      scores.update(paper_probe("raw_pixels_", lambda x: x.reshape(x.shape[0], -1)))
    for key, value in scores.items():
      results["raw_pixels_" + key] = value
  train, test = kept["features"]
  results.update(
    num_train=int(len(train[1])), num_test=int(len(test[1])), eval_seconds=round(time.perf_counter() - started, 1)
  )
  (workdir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
  with open(workdir / HISTORY_FILE, "a") as history:
    history.write(json.dumps({k: v for k, v in results.items() if k in HISTORY_KEYS or k.endswith("_top1")}) + "\n")
  print(format_table(results))
  if ev.pictures:
    drawn = draw_pictures(workdir, config, source, kept, results, dataset=dataset, splits=(train_split, test_split))
    print("pictures: " + ", ".join(str(p) for p in drawn))
  return results


HISTORY_FILE = "eval_history.jsonl"
HISTORY_KEYS = ("step", "protocol", "num_train", "num_test")
NEIGHBOUR_QUERIES, NEIGHBOURS = 12, 6


def images_at(dataset, indices) -> np.ndarray:
  """The images of ``dataset`` (batches of ``{"image"}``, in order) at ``indices`` (any shape),
  float in [0, 1], shaped ``indices.shape + [H, W, C]``; reads only as far as the largest index."""
  indices = np.asarray(indices)
  wanted, found, offset = set(indices.reshape(-1).tolist()), {}, 0
  for batch in dataset.as_numpy_iterator():
    for i in wanted & set(range(offset, offset + len(batch["image"]))):
      found[i] = batch["image"][i - offset]
    offset += len(batch["image"])
    if len(found) == len(wanted):
      break
  flat = np.stack([found[i] for i in indices.reshape(-1).tolist()]).astype(np.float32) / 255
  return flat.reshape(indices.shape + flat.shape[1:])


def draw_pictures(workdir, config, source, kept, results, *, dataset, splits) -> list[pathlib.Path]:
  """``neighbours.png`` (and ``neighbours.json``: the indices it shows), ``embedding.png`` and
  ``summary.png`` of an evaluation (see ``jssl.eval_pictures``); returns the pictures' paths.

  ``kept``: ``{"features": ((train [N, F], labels [N]), (test [M, F], labels [M])), "raw
  pixels": (the same for the pixels, when the source has a fixed image shape)}``;
  ``dataset(split)``: that split's images in the order the features were extracted.
  """
  from jssl import eval_pictures  # noqa: PLC0415  (matplotlib only when drawing)

  train_split, test_split = splits
  (train_x, train_y), (test_x, test_y) = kept["features"]
  names = eval_pictures.class_names(source.name, source.num_classes)
  queries = eval_pictures.pick_queries(test_y, NEIGHBOUR_QUERIES, seed=config.seed)
  shown_indices = {"test_queries": queries.tolist()}
  found, labels = {}, {}
  for title, ((bank, bank_y), (tests, _)) in (("by the encoder's features", kept["features"]),) + (
    (("by raw pixels", kept["raw pixels"]),) if "raw pixels" in kept else ()
  ):
    found[title] = eval_pictures.nearest(bank, tests[queries], NEIGHBOURS)
    labels[title] = bank_y[found[title]]
    shown_indices[f"train_neighbours {title}"] = found[title].tolist()
  # One pass over the training split for every column's neighbours.
  images = images_at(dataset(train_split), np.stack(list(found.values())))
  columns = {f"nearest training images {title}": (images[i], labels[title]) for i, title in enumerate(found)}
  paths = [workdir / "neighbours.png", workdir / "embedding.png", workdir / "summary.png"]
  # Which images neighbours.png shows (indices into the splits, in the source's order).
  (workdir / "neighbours.json").write_text(json.dumps(shown_indices) + "\n")
  query_images = images_at(dataset(test_split), queries)
  eval_pictures.save_neighbours(paths[0], query_images, test_y[queries], columns, names)
  shown = np.random.default_rng(config.seed).permutation(len(test_y))[: eval_pictures.EMBEDDING_POINTS]
  panels = {"encoder features": test_x[shown]}
  if "raw pixels" in kept:
    panels["raw pixels"] = kept["raw pixels"][1][0][shown]
  eval_pictures.save_embedding(paths[1], panels, test_y[shown], names)
  history = [json.loads(line) for line in (workdir / HISTORY_FILE).read_text().splitlines() if line.strip()]
  history = [h for h in history if h.get("protocol") == results["protocol"]]
  eval_pictures.save_summary(
    paths[2],
    read_metrics(workdir),
    results,
    history,
    batch_size=config.train.batch_size,
    knn_k=min(config.eval.knn_ks),
  )
  return paths


def format_table(results: dict) -> str:
  """The results as a small text table, one row per representation."""
  rows = [("pretrained encoder", ""), ("same encoder, random init", "random_init_"), ("raw pixels", "raw_pixels_")]
  ks = sorted((int(key[len("knn_k") : -len("_top1")]) for key in results if key.startswith("knn_k")), reverse=True)
  paper = results.get("protocol") == "paper"
  header = f"{'features':<28}{'linear top-1':>14}{'' if paper else '(l2)':>8}" + "".join(
    f"{f'kNN k={k} top-1':>18}" for k in ks
  )
  lines = [header, "-" * len(header)]
  for label, prefix in rows:
    if prefix + "linear_top1" in results:
      l2 = "" if paper else f"{results[prefix + 'linear_l2']:.0e}"
      lines.append(
        f"{label:<28}{results[prefix + 'linear_top1']:>14.4f}{l2:>8}"
        + "".join(f"{results[f'{prefix}knn_k{k}_top1']:>18.4f}" for k in ks)
      )
  how = (
    f"linear: the papers' protocol, {results.get('linear_optimizer')} for {results.get('linear_epochs')} epochs on "
    "augmented images"
    if paper
    else "linear: logistic regression, l2 chosen on held-out train examples"
  )
  lines.append(f"(step {results['step']}, {results['num_train']} train / {results['num_test']} test examples; {how})")
  return "\n".join(lines)


class Holdout:
  """Held-out reconstructions for tasks that make images: ``samples.png`` and mean scores.

  The first ``eval.holdout_examples`` images of the eval split (whole images, resized) and
  one fixed key, so every report corrupts the same images the same way; every process
  computes the same (replicated) result.
  """

  def __init__(self, setup: Setup):
    config = setup.config
    dataset = pipeline.eval_dataset(
      setup.source,
      split=config.data.eval_split,
      batch_size=config.eval.holdout_examples,
      image_size=config.data.image_size,
      grayscale_to_rgb=config.data.grayscale_to_rgb,
    )
    images = next(dataset.as_numpy_iterator())["image"]
    replicated = parallel.replicated(setup.mesh)
    self.images = jax.make_array_from_callback(images.shape, replicated, lambda index: images[index])
    self.sample_images = config.eval.sample_images
    key = jax.random.key(config.seed + 1)
    self._reconstruct = jax.jit(
      lambda params, stats, images: setup.task.reconstruct(params, stats, images, key), out_shardings=replicated
    )

  def report(self, state: TrainState, path: pathlib.Path, *, write: bool) -> dict:
    """Writes ``path`` (when ``write``) and returns ``{"holdout_<score>": mean}``."""
    from jssl import plots  # noqa: PLC0415  (matplotlib only when training)

    rows, scores = to_host(self._reconstruct(state.params, state.batch_stats, self.images))
    if write:
      plots.save_image_grid(path, {name: images[: self.sample_images] for name, images in rows.items()})
    return {f"holdout_{name}": float(np.mean(values)) for name, values in scores.items()}
