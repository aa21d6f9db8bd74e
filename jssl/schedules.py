"""How long a run is, and the per-step schedules tasks apply over it (not the learning rate's,
which is ``jssl.optim``'s).

* ``training_length(config, source)`` -> ``(total_steps, steps_per_epoch)``: what the loop runs.
* ``cosine_momentum(step, total_steps, base)``: BYOL's EMA momentum, ``base`` at step 0 rising
  to 1 at the end (``1 - (1 - base)(cos(pi k / K) + 1) / 2``); MoCo v3 and DINO use the same.
* ``linear_warmup(step, start, end, warmup_steps)``: ``start`` to ``end`` linearly over
  ``warmup_steps``, then ``end`` (DINO's teacher temperature).

The schedules take ``step`` as a traced int32 ``[]`` (the steps done before the current one)
and return float32 ``[]``, so they run inside the jit step.
"""

import jax.numpy as jnp
import ml_collections

from jssl.errors import ConfigError


def training_length(config: ml_collections.ConfigDict, source) -> tuple[int, int]:
  """``(total_steps, steps_per_epoch)`` of a run of ``config`` on ``source`` (a
  ``jssl.data.sources.Source``): ``train.steps`` if set, else ``train.epochs`` of the train split
  at the global batch (an epoch is at least one step)."""
  steps_per_epoch = max(1, source.num_examples(config.data.train_split) // config.train.batch_size)
  total_steps = config.train.steps if config.train.steps > 0 else round(config.train.epochs * steps_per_epoch)
  if total_steps < 1:
    raise ConfigError("Nothing to train: set --config.train.steps or --config.train.epochs to a positive value.")
  return total_steps, steps_per_epoch


def cosine_momentum(step, total_steps: int, base: float):
  """EMA momentum at ``step`` of ``total_steps``: ``base`` at 0, 1 at ``total_steps`` (cosine)."""
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / max(total_steps, 1), 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def linear_warmup(step, start: float, end: float, warmup_steps: int):
  """``start`` at step 0 to ``end`` at ``warmup_steps`` linearly, then ``end``."""
  if warmup_steps <= 0:
    return jnp.asarray(end, jnp.float32)
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / warmup_steps, 1.0)
  return jnp.asarray(start + (end - start) * progress, jnp.float32)
