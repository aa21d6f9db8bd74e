"""Optimizers and learning-rate schedules with SimCLR's rules, and the pieces tasks use to
give parameter groups optimizers of their own.

* Base learning rate scaled with the global batch: ``lr * B / 256`` ("linear") or
  ``lr * sqrt(B)`` ("sqrt", SimCLR's choice for small batches / long training).
* Linear warm-up, then cosine decay to zero.
* Weight decay constant (``optim.weight_decay_end = -1``) or, as DINO does, cosine from
  ``weight_decay`` to ``weight_decay_end`` over training, per step (``weight_decay_schedule``).
  The decay is added to the update before the learning rate scales it, so AdamW's step takes
  ``lr_t * wd_t * p`` off each kernel (torch AdamW's decoupled ``p -= lr * wd * p``); for SGD
  and LARS it enters the momentum / trust ratio as in SimCLR.
* Weight decay and LARS trust-ratio adaptation only for kernels: parameters with
  more than one dimension. Biases and batch-norm scales/shifts are vectors, so the
  mask is decided by shape and does not depend on parameter names.
* ``route`` sends each parameter group through its own transformation (SwAV's prototypes,
  inpainting's discriminator); ``frozen_until`` holds a transformation's updates at zero for
  its first steps; ``clip_by_tensor_norm`` clips each parameter's gradient on its own (DINO).
"""

import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
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


def weight_decay_schedule(*, start: float, end: float, total_steps: int) -> optax.Schedule:
  """``end + (start - end) * (1 + cos(pi * step / total_steps)) / 2``, then ``end`` after
  ``total_steps``: DINO's ``cosine_scheduler(weight_decay, weight_decay_end, epochs,
  niter_per_ep)`` indexed by the step."""
  total_steps = max(total_steps, 1)

  def schedule(step):
    progress = jnp.minimum(step, total_steps) / total_steps
    return end + (start - end) * 0.5 * (1 + jnp.cos(jnp.pi * progress))

  return schedule


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
  """The optimizer named by ``config.name`` (``lars`` | ``sgd`` | ``adamw``) and its
  learning-rate schedule. A constant weight decay (``weight_decay_end = -1``) is a float in
  the optimizer, whose state then holds no step count of its own: the same state as before
  the schedule existed, so older checkpoints restore. A scheduled one adds that count (one
  more scalar in the state), so a run resumes only with the setting it started with."""
  if config.weight_decay < 0:
    raise ConfigError(f"optim.weight_decay={config.weight_decay} must be >= 0.")
  if config.weight_decay_end < 0 and config.weight_decay_end != -1:
    raise ConfigError(
      f"optim.weight_decay_end={config.weight_decay_end} must be >= 0 (cosine schedule) or -1 (constant weight_decay)."
    )
  weight_decay = config.weight_decay
  if config.weight_decay_end >= 0:
    weight_decay = weight_decay_schedule(
      start=config.weight_decay, end=config.weight_decay_end, total_steps=total_steps
    )
  peak = scaled_learning_rate(config.base_lr, batch_size=batch_size, scaling=config.lr_scaling)
  schedule = learning_rate_schedule(
    peak_lr=peak, warmup_steps=round(config.warmup_epochs * steps_per_epoch), total_steps=total_steps
  )
  if config.name == "lars":
    tx = optax.lars(
      schedule,
      weight_decay=weight_decay,
      weight_decay_mask=kernel_mask,
      trust_coefficient=config.trust_coefficient,
      trust_ratio_mask=kernel_mask,
      momentum=config.momentum,
    )
  elif config.name == "sgd":
    tx = optax.chain(
      optax.add_decayed_weights(weight_decay, mask=kernel_mask),
      optax.sgd(schedule, momentum=config.momentum, nesterov=False),
    )
  elif config.name == "adamw":
    tx = optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=weight_decay, mask=kernel_mask)
  else:
    raise ConfigError(f"optim.name must be 'lars', 'sgd' or 'adamw', got {config.name!r}.")
  return tx, schedule


def parameter_path(path) -> tuple[str, ...]:
  """A pytree key path as names: ``("encoder", "conv", "kernel")``."""
  return tuple(str(getattr(key, "key", getattr(key, "name", key))) for key in path)


def route(
  transforms: Mapping[str, optax.GradientTransformation], group_of: Callable[[tuple[str, ...]], str]
) -> optax.GradientTransformation:
  """Each parameter through ``transforms[group_of(path)]``, ``path`` its names from the top
  (``("prototypes", "kernel")``); every group's transformation sees only its own parameters,
  and its state only theirs. ``optax.multi_transform`` with the groups as labels, so a state is
  ``PartitionState(inner_states={group: MaskedState(...)})``."""

  def labels(params):
    def label(path, _):
      group = group_of(parameter_path(path))
      if group not in transforms:
        raise ValueError(f"Parameter {'/'.join(parameter_path(path))} is in group {group!r}, which has no transform.")
      return group

    return jax.tree_util.tree_map_with_path(label, params)

  return optax.multi_transform(dict(transforms), labels)


def reset_groups(tx: optax.GradientTransformation, state, fresh, params, groups) -> optax.OptState:
  """``state`` with the copies of ``params`` it holds (momentum, Adam's moments) taken from
  ``fresh`` (``tx.init`` of the new values) under the top-level parameter ``groups``; everything
  else (the step count, other groups' moments) kept. For a group re-initialised mid-run
  (DeepCluster's classifier after a clustering), as a new optimizer for it would start. The
  count is shared by every parameter, so Adam's bias correction does not restart: AdamW's
  first updates of the group are then up to 1/sqrt(1 - b2) times a fresh Adam's (SGD and
  LARS, whose state is only momentum, restart exactly)."""
  groups = set(groups)
  in_group = jax.tree_util.tree_map_with_path(lambda path, _: parameter_path(path)[0] in groups, params)
  take_fresh = optax.tree_map_params(
    tx,
    lambda _, flag: flag,
    state,
    in_group,
    transform_non_params=lambda _: False,
    is_leaf=lambda x: isinstance(x, optax.MaskedNode),
  )
  return jax.tree.map(lambda flag, old, new: new if flag else old, take_fresh, state, fresh)


def frozen_until(steps: int, tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """``tx`` with its gradient (before) and update (after) multiplied by 0 for its first
  ``steps`` updates, by 1 after. Zeroing the gradient keeps momentum free of the frozen steps;
  zeroing the update also holds back weight decay. ``tx`` keeps counting its own steps while
  frozen, so its learning-rate schedule stays in step with the rest of the model's."""

  def gate():
    return optax.scale_by_schedule(lambda count: (count >= steps).astype(jnp.float32))

  return optax.chain(gate(), tx, gate())


def clip_by_tensor_norm(max_norm: float) -> optax.GradientTransformation:
  """Each parameter's gradient ``g`` scaled by ``min(1, max_norm / (||g||_2 + 1e-6))``, tensor by
  tensor: facebookresearch/dino's ``utils.clip_gradients`` (``optax.clip_by_global_norm`` clips
  the whole tree by one norm instead). Stateless; chain it before the optimizer.
  """
  if not max_norm > 0:
    raise ConfigError(f"clip_by_tensor_norm: max_norm={max_norm} must be > 0.")

  def clip(g):
    norm = jnp.sqrt(jnp.sum(jnp.square(g)))
    return g * jnp.minimum(1.0, max_norm / (norm + 1e-6)).astype(g.dtype)

  def update(updates, state, params=None):
    del params
    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
