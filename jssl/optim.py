"""Optimizers and learning-rate schedules with SimCLR's rules.

* Base learning rate scaled with the global batch: ``lr * B / 256`` ("linear") or
  ``lr * sqrt(B)`` ("sqrt", SimCLR's choice for small batches / long training).
* Linear warm-up, then cosine decay to zero.
* Weight decay and LARS trust-ratio adaptation only for kernels: parameters with
  more than one dimension. Biases and batch-norm scales/shifts are vectors, so the
  mask is decided by shape and does not depend on parameter names.
"""

import math

import jax
import ml_collections
import optax

from jssl.errors import ConfigError


def scaled_learning_rate(base_lr: float, *, batch_size: int, scaling: str) -> float:
  if scaling == "linear":
    return base_lr * batch_size / 256
  if scaling == "sqrt":
    return base_lr * math.sqrt(batch_size)
  if scaling == "none":
    return base_lr
  raise ConfigError(f"optim.lr_scaling must be 'linear', 'sqrt' or 'none', got {scaling!r}.")


def learning_rate_schedule(*, peak_lr: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
  """0 -> peak_lr linearly over ``warmup_steps``, then cosine to 0 at ``total_steps``."""
  warmup_steps = min(warmup_steps, total_steps)
  return optax.warmup_cosine_decay_schedule(
    init_value=0.0,
    peak_value=peak_lr,
    warmup_steps=warmup_steps,
    decay_steps=max(total_steps, warmup_steps + 1),
    end_value=0.0,
  )


# Learned embeddings that are arrays but not kernels: a ViT's position embeddings and
# [CLS] token, which DeiT, MAE and timm keep out of weight decay.
_NOT_KERNELS = ("pos_embed", "cls_token")


def kernel_mask(params):
  """True for parameters that get weight decay and trust-ratio scaling: ndim > 1, except
  ViT position embeddings and [CLS] tokens."""

  def is_kernel(path, p):
    names = {getattr(key, "key", getattr(key, "name", None)) for key in path}
    return p.ndim > 1 and not names & set(_NOT_KERNELS)

  return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_optimizer(
  config: ml_collections.ConfigDict, *, batch_size: int, total_steps: int, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer named by ``config.name`` (``lars`` | ``sgd`` | ``adamw``) and its schedule."""
  peak = scaled_learning_rate(config.base_lr, batch_size=batch_size, scaling=config.lr_scaling)
  schedule = learning_rate_schedule(
    peak_lr=peak, warmup_steps=round(config.warmup_epochs * steps_per_epoch), total_steps=total_steps
  )
  if config.name == "lars":
    tx = optax.lars(
      schedule,
      weight_decay=config.weight_decay,
      weight_decay_mask=kernel_mask,
      trust_coefficient=config.trust_coefficient,
      trust_ratio_mask=kernel_mask,
      momentum=config.momentum,
    )
  elif config.name == "sgd":
    tx = optax.chain(
      optax.add_decayed_weights(config.weight_decay, mask=kernel_mask),
      optax.sgd(schedule, momentum=config.momentum, nesterov=False),
    )
  elif config.name == "adamw":
    tx = optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay, mask=kernel_mask)
  else:
    raise ConfigError(f"optim.name must be 'lars', 'sgd' or 'adamw', got {config.name!r}.")
  return tx, schedule
