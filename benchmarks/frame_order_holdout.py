"""Held-out order accuracy of a frame-order run: its encoder and order head (batch norm in
inference mode) on tuples made from the source's test clips exactly as in training (the same
frame sampling, crop, flip, and positives / negatives in the same proportions).

  .venv/bin/python benchmarks/frame_order_holdout.py runs/table/frame_order [--batches 20]

The last line of stdout is one JSON object: ``order_accuracy``, ``chance`` (the share of the
commoner class), ``tuples``, ``step``.
"""

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jssl.data import pipeline
from jssl.data.sources import source_from_config
from jssl.workdir import read_run_config, restore_run, run_setup


def holdout_order_accuracy(workdir: pathlib.Path, *, batches: int = 20, batch_size: int = 128) -> dict:
  config = read_run_config(workdir)
  if config.task != "frame_order":
    raise SystemExit(f"{workdir} is a {config.task} run, not frame_order.")
  setup = run_setup(workdir, config)
  state, step = restore_run(setup, workdir)
  task = setup.task
  source = source_from_config(config.data, seed=config.seed)
  data = pipeline.pretrain_dataset(
    source,
    split=config.data.eval_split,
    batch_size=batch_size,
    host_example=task.host_example,
    seed=config.seed + 1,  # other crops and frames than any training batch's
    grayscale_to_rgb=config.data.grayscale_to_rgb,
  )

  @jax.jit
  def correct(params, batch_stats, frames, rng):
    shown, _, labels = task.shuffle(frames.astype(jnp.float32) / 255.0, rng)
    _, logits = task.model.apply({"params": params, "batch_stats": batch_stats}, shown, train=False)
    return jnp.sum(jnp.argmax(logits, -1) == labels)

  hits = 0
  for i, batch in zip(range(batches), data.as_numpy_iterator()):
    hits += int(correct(state.params, state.batch_stats, batch["frames"], jax.random.key(10_000 + i)))
  fraction = task.positive_fraction if task.mode == "binary" else None
  chance = max(fraction, 1 - fraction) if fraction is not None else 1 / len(np.unique(task.labels))
  tuples = batches * batch_size
  return {"order_accuracy": hits / tuples, "chance": chance, "tuples": tuples, "step": step}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("workdir", type=pathlib.Path)
  p.add_argument("--batches", type=int, default=20)
  p.add_argument("--batch-size", type=int, default=128)
  args = p.parse_args(argv)
  result = holdout_order_accuracy(args.workdir, batches=args.batches, batch_size=args.batch_size)
  print(json.dumps(result), flush=True)
  return result


if __name__ == "__main__":
  sys.exit(0 if main() else 1)
