"""What every pretext task gives the train loop, with the defaults most tasks keep.

The loop (``jssl.train``) and the exporter call only these; a task must define
``host_example``, ``batch_spec``, ``init``, ``loss`` and ``augmentation_rows`` (a task that
does not fails at construction, naming them) and overrides the rest as it needs.

* ``name``: the ``config.task`` value that selects it.
* ``defaults()``: the task's own config section (``config.<name>``), or ``None``.
* ``reads``: the fields of shared sections that only some tasks use (``jssl.config.TASK_DEPENDENT``:
  ``augment``, the projection head's ``model.head_*``) that this task reads, as dotted names or
  section prefixes. Setting one the task does not read, or a field of another task's section,
  away from its default is an error (``jssl.tasks.check_fields``).
* ``host_example(image, seed)``: tf.data side, float32 ``[H, W, C]`` in [0, 1] and an
  int64 ``[2]`` seed -> the dict of arrays one example contributes to a batch.
* ``batch_spec(batch_size, source)``: global shapes and dtypes of those batches.
* ``init(rng, batch)``: ``{"params", "batch_stats"?, "extra"?}``. ``extra`` is the task's
  state that is not trained: an EMA target network, a center, a queue, pseudo-labels, a
  running prior. The loop checkpoints it, shards it by the same rules as ``params``, and
  leaves it unchanged by a step whose loss or gradient is not finite.
* ``loss(params, batch_stats, extra, batch, rng, step)`` ->
  ``loss, (batch_stats, extra, metrics, features)``: ``step`` int32 ``[]`` is the number of
  steps done before this one; ``features [B, F]`` are the encoder's (detached by the loop for
  the online probe); ``extra`` as the step should leave it (e.g. a running average updated).
* ``loss_and_grads(...)``: ``jax.value_and_grad(loss)`` unless the task needs more (a
  second network with its own loss, gradient caching).
* ``after_update(params, extra, step)`` -> ``extra``: runs inside the jit step after the
  optimizer update with the new ``params``, e.g. an EMA target
  ``optax.incremental_update(params, extra, 1 - momentum(step))``; default: unchanged.
* ``optimizer(tx)``: the optimizer for the whole ``params`` tree given the run's ``tx``
  (tasks with a second network route its parameters to their own optimizer).
* ``encoder``: the encoder module (default ``self.model.encoder``) evaluated and exported.
* ``networks``: the names of the encoders a task can export, the one its paper evaluates first
  (BYOL: ``("online", "target")``, DINO: ``("teacher", "student")``); empty: just the one.
* ``encoder_variables(params, batch_stats, extra, network=None)``: the variables of that
  encoder (``None``: the first) that export and evaluation use (default: the trained encoder;
  a task may export what it keeps in ``extra``).
* ``total_steps``, ``steps_per_epoch``: the run's length (``jssl.schedules.training_length``),
  for schedules over training (an EMA momentum, a temperature warm-up); ``None`` when the task
  is built without a source.
* ``augmentation_rows(batch, rng)``: ``name -> [N, S, S, C]`` pictures of what the model is
  fed, for ``augmentations.png``.
* ``reconstruct(params, batch_stats, images, rng)``: for tasks that produce images, rows
  for ``samples.png`` and held-out quality metrics; ``None`` for the others.
* ``refresh_every(steps_per_epoch)`` and ``refresh(params, batch_stats, extra, setup)`` ->
  ``(params, batch_stats, extra)``: work done outside the jit step every so many steps
  (DeepCluster's k-means over the training set). The loop calls ``refresh`` before step
  ``s`` whenever ``(s - 1) % refresh_every == 0``: before the first step, and after a resume
  only at those boundaries (what a refresh computes lives in the checkpointed state). Every
  process calls it and must return the same values; the loop places them on the state's
  shardings. ``refresh_resets``: the top-level parameter groups a refresh re-initialises
  (DeepCluster's classifier); the loop gives them a fresh optimizer state then (momentum,
  Adam moments), keeping the step count all parameters share.

A task whose ``batch_spec`` has an ``"index"`` entry gets, in every batch, each example's
position ``int32 [B]`` in the training split (``jssl.data.pipeline``), e.g. to look up a
pseudo-label.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl.errors import ConfigError
from jssl.schedules import training_length


class Task:
  """Base class; see the module docstring for the contract."""

  name: str = ""
  produces_images: bool = False  # True: the loop calls ``reconstruct`` every ``train.eval_every`` steps
  reads: tuple[str, ...] = ()  # task-dependent shared fields it reads (see the module docstring)
  refresh_resets: tuple[str, ...] = ()  # parameter groups ``refresh`` re-initialises (their optimizer state too)
  networks: tuple[str, ...] = ()  # exportable encoders, the default first; () = one, the trained encoder

  # What every task must define itself: the base class has no sensible default for these.
  REQUIRED = ("host_example", "batch_spec", "init", "loss", "augmentation_rows")

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    missing = [name for name in self.REQUIRED if getattr(type(self), name) is getattr(Task, name)]
    if missing:
      raise TypeError(
        f"Task {type(self).__name__} does not define {', '.join(missing)}: every task must "
        "(see jssl.tasks.base for what each returns)."
      )
    self.config = config
    self.mesh = mesh
    self.source = source  # the run's jssl.data.sources.Source (None when built without data)
    self.total_steps, self.steps_per_epoch = training_length(config, source) if source is not None else (None, None)

  @classmethod
  def defaults(cls) -> ml_collections.ConfigDict | None:
    return None

  def host_example(self, image, seed) -> dict:
    """tf.data side: float32 ``[H, W, C]`` in [0, 1] and an int64 ``[2]`` seed -> the arrays
    one example contributes to a batch (tf tensors)."""
    raise NotImplementedError

  def batch_spec(self, batch_size: int, source) -> dict:
    """``name -> jax.ShapeDtypeStruct`` of the global batches ``host_example`` builds."""
    raise NotImplementedError

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """``{"params", "batch_stats"?, "extra"?}`` for a batch shaped as ``batch_spec``."""
    raise NotImplementedError

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    """``name -> [N, S, S, C]`` in [0, 1]: what the model is fed, for ``augmentations.png``."""
    raise NotImplementedError

  @property
  def encoder(self):
    """The encoder module (``num_features``, ``apply``) that evaluation, export and the
    online probe use; its variables are ``encoder_variables(params, batch_stats)``."""
    return self.model.encoder

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``."""
    raise NotImplementedError

  def loss_and_grads(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``((loss, (batch_stats, extra, metrics, features)), grads)`` with grads of ``params``."""
    return jax.value_and_grad(self.loss, has_aux=True)(params, batch_stats, extra, batch, rng, step)

  def after_update(self, params, extra, step: jax.Array):
    """``extra`` after the optimizer step that produced ``params`` (step: steps done before it)."""
    del params, step
    return extra

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    return tx

  def encoder_variables(self, params, batch_stats, extra=None, network=None) -> dict:
    """The variables of the encoder named ``network`` (one of ``networks``; ``None``: the
    default) that evaluation and export use: by default the trained encoder's (``batch_stats``
    is ``{}`` for an encoder without batch norm, a ViT). A task whose encoder of record lives
    in ``extra`` (DINO's teacher, an EMA) returns it from there: the loop's callers pass the
    state's ``extra``."""
    del extra
    self.network_name(network)
    return {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}

  def network_name(self, network: str | None) -> str:
    """``network`` checked against ``networks`` (``None``: the default, the first)."""
    names = self.networks or ("encoder",)
    if network is None:
      return names[0]
    if network not in names:
      raise ConfigError(f"Task {self.name} has no network {network!r}; it exports {', '.join(names)}.")
    return network

  def reconstruct(self, params, batch_stats, images: jax.Array, rng: jax.Array):
    """``(rows, metrics)`` for held-out ``images [N, S, S, C]`` in [0, 1], or ``None``."""
    return None

  def refresh_every(self, steps_per_epoch: int) -> int:
    """Steps between calls of ``refresh``; 0 (the default): never."""
    del steps_per_epoch
    return 0

  def refresh(self, params, batch_stats, extra, setup):
    """``(params, batch_stats, extra)`` of the same structure, shapes and dtypes, recomputed
    outside the step (``setup`` is ``jssl.train.Setup``: config, source, mesh ...)."""
    raise NotImplementedError(f"{type(self).__name__} sets refresh_every but has no refresh.")


def global_indices(batch_size: int) -> jax.Array:
  """``[B]`` positions in the global batch: per-example randomness keyed by these does
  not depend on how the batch is split over devices."""
  return jnp.arange(batch_size)
