"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"):
self-distillation with no labels. A student network learns to match, on every crop of an image,
the output distribution a teacher network gives on the image's global crops; the teacher is an
exponential moving average of the student, never trained by gradient. Collapse is avoided by
centring the teacher's logits (subtracting a running mean, against one dimension taking over)
and sharpening them (a low teacher temperature, against the uniform distribution).

Networks (``jssl.models.dino``): student = encoder -> ``DINOHead``: an MLP (``dino.head_layers``
3 Dense layers, ``dino.head_hidden_dim`` 2048 wide, GELU, batch norm only with
``dino.head_batch_norm``) to a ``dino.bottleneck_dim`` 256 embedding, L2 normalisation, and a
weight-normalised bias-free last layer to ``dino.out_dim`` 65536 logits. With
``dino.norm_last_layer`` (the reference's default) the last layer's weight-norm scale ``g`` is
fixed at 1: each output unit's weight vector has unit length. This is done by normalising the
stored kernel's columns in the forward pass (as SwAV's prototypes in ``jssl.tasks.swav``), so
the update stays a plain optax step; without it a per-unit ``scale`` is learnt too. The head's
sizes are this section's own fields, not ``model.head_*`` (``reads`` is just ``augment``).
Teacher = the same encoder and head, its own parameters and batch-norm statistics.

Views (``jssl.tasks.views.ViewTask``, ``takes_local_crops``): two global views at
``data.image_size`` and ``augment.local_crops`` local crops (``local_crop_size``,
``local_crop_area``), made on the host. The teacher sees the two global views, the student all
of them. As the reference's ``MultiCropWrapper``, crops of one resolution go through the encoder
in one pass (the global views together, the local crops together: batch-norm statistics per
resolution, over the global batch under ``jax.jit``), and all crops through the head in one pass.

Loss (``jssl.losses.dino``): with ``s_v`` the student's logits on crop v and ``t_i`` the
teacher's on global view i,

  loss = mean over pairs (i, v != i) of mean over the batch of
         - sum_k softmax((t_i - c) / tau_t)[k] log softmax(s_v / tau_s)[k]

``tau_s`` = ``dino.student_temperature`` 0.1; ``tau_t`` warms up linearly from
``dino.warmup_teacher_temperature`` 0.04 to ``dino.teacher_temperature`` 0.07 over
``dino.warmup_teacher_temperature_epochs`` 30 epochs (per step, ``jssl.schedules.linear_warmup``).
The center ``c`` [K] starts at 0 and, after the loss, moves by EMA towards this step's mean
teacher logits over the global batch and both global views: ``c <- m c + (1 - m) mean(t)``,
``m`` = ``dino.center_momentum`` 0.9 (the reference's ``update_center``).

Teacher update (``after_update``): after every optimizer step, teacher parameters (encoder and
head) ``<- tau theta_teacher + (1 - tau) theta_student``, ``tau`` rising from
``dino.base_momentum`` 0.996 to 1 by a cosine over training (``jssl.schedules.cosine_momentum``,
the reference's ``momentum_schedule``). The EMA covers parameters only: the teacher runs in
train mode (batch statistics of the current batch, as the reference, which never puts it in eval
mode) and keeps its own running averages, updated by its forward passes.

Optimizer (``optimizer``): the run's ``tx`` (the recipes: AdamW with weight decay 0.04 -> 0.4 by
``optim.weight_decay`` / ``weight_decay_end``), preceded by per-tensor gradient clipping at
``dino.clip_grad`` 3.0 (``jssl.optim.clip_by_tensor_norm``, the reference's
``utils.clip_gradients``; 0 turns it off; a task option, not a generic ``optim`` one, because
this per-tensor rule is DINO's), and with the head's last layer frozen for the first
``dino.freeze_last_layer_epochs`` 1 epoch: its gradient and update zeroed
(``jssl.optim.route`` + ``frozen_until``), the reference's ``cancel_gradients_last_layer``.

State: ``params`` = the student's ``{"encoder", "head"}``; ``extra`` = ``{"teacher": {"params",
"batch_stats"}, "center": [K]}``, the teacher a copy of the student at initialisation.
``networks = ("teacher", "student")``: export and evaluation take the teacher's encoder (what
the paper evaluates) unless ``--network student``.

Metrics: ``embedding_std`` (``jssl.losses.embedding_std`` of the student's L2-normalised
bottleneck embedding, mean over the two global views; collapse -> 0), ``teacher_entropy``
(entropy of the teacher's centred, sharpened targets: log K for uniform collapse, 0 for
one-hot), ``teacher_temperature`` and ``momentum`` (the ``tau`` used after this step's update).

Differences from the paper and the reference code, deliberate:

* The teacher temperature and the last layer's freeze are scheduled per step (warm-up over
  ``round(epochs * steps_per_epoch)`` steps); the reference indexes both by epoch (its
  temperature is ``linspace(0.04, 0.07, 30)[epoch]``, reaching 0.07 at the start of epoch 29).
* Frozen last layer: ``frozen_until`` zeroes its gradient and update, as the reference's
  ``p.grad = None`` skips it; but optax's Adam counts the frozen steps in its bias correction
  (torch's starts counting at the first real gradient), so the layer's first updates after the
  freeze are a little smaller.
* The learning rate decays to 0 (jssl's schedule), not to the reference's ``min_lr`` 1e-6.
* ViT encoders have no stochastic depth (the reference's student uses drop-path 0.1), and jssl
  keeps the ViT position embeddings and [CLS] token out of weight decay (the reference decays
  every tensor with more than one dimension, those included).
* Colour jitter: jssl's ``augment.jitter_strength`` 0.5 gives DINO's brightness / contrast 0.4 and
  hue 0.1 but saturation 0.4 instead of 0.2; global crops use SimCLR's crop sampler (area floor
  10%, irrelevant for DINO's (0.4, 1) and (0.14, 1)).
* Mixed precision: the reference trains in float16 with a loss scaler; jssl uses
  ``model.dtype`` (float32 by default) and computes the last layer and the loss in float32.
* With ``dino.head_batch_norm`` the MLP's Dense layers before a batch norm have no bias (it would
  be cancelled by the batch norm's mean); the reference keeps it.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import optim
from jssl.errors import ConfigError
from jssl.losses import dino, dino_center_update, dino_teacher_entropy, embedding_std
from jssl.models import build_encoder
from jssl.models.dino import DINOHead, DINONetwork
from jssl.schedules import cosine_momentum, linear_warmup
from jssl.tasks.views import ViewTask

LAST_LAYER = ("head", "last_layer")  # the parameter group frozen for the first epoch(s)


class DINO(ViewTask):
  """The DINO pretext task (batches: ``jssl.tasks.views.ViewTask``, with local crops)."""

  name = "dino"
  reads = ("augment",)  # the head's sizes are dino.* fields, not model.head_*
  takes_local_crops = True
  networks = ("teacher", "student")

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    # The head (reference: vision_transformer.DINOHead and main_dino.py's defaults).
    c.head_hidden_dim = 2048  # width of the MLP's hidden layers
    c.bottleneck_dim = 256  # the MLP's output, L2-normalised before the last layer
    c.head_layers = 3  # Dense layers in the MLP (reference nlayers)
    c.head_batch_norm = False  # batch norm after the MLP's hidden layers (reference use_bn_in_head)
    c.out_dim = 65536  # K, outputs of the weight-normalised last layer (reference out_dim)
    c.norm_last_layer = True  # the last layer's weight-norm scale fixed at 1 (reference norm_last_layer)
    # Loss.
    c.student_temperature = 0.1
    c.teacher_temperature = 0.07  # after the warm-up (the paper's 0.04 -> 0.07; the repo's default is 0.04)
    c.warmup_teacher_temperature = 0.04  # at step 0, linearly to teacher_temperature
    c.warmup_teacher_temperature_epochs = 30.0  # length of that warm-up (0: teacher_temperature throughout)
    c.center_momentum = 0.9  # EMA of the center over the teacher's logits
    # Teacher and optimizer.
    c.base_momentum = 0.996  # teacher EMA momentum at step 0, cosine to 1 at the end
    c.freeze_last_layer_epochs = 1.0  # the last layer's updates are zeroed for this many epochs
    c.clip_grad = 3.0  # per-tensor gradient norm clip (reference utils.clip_gradients); 0: off
    # Multi-crop: augment.local_crops (DINO: 8), local_crop_size (96 at 224), local_crop_area (0.05, 0.4).
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.dino
    for name in ("head_hidden_dim", "bottleneck_dim", "head_layers", "out_dim"):
      if s[name] < 1:
        raise ConfigError(f"dino.{name}={s[name]}: use a positive number.")
    for name in ("student_temperature", "teacher_temperature", "warmup_teacher_temperature"):
      if not s[name] > 0:
        raise ConfigError(f"dino.{name}={s[name]} must be > 0 (DINO: student 0.1, teacher 0.04 to 0.07).")
    for name in ("center_momentum", "base_momentum"):
      if not 0.0 <= s[name] <= 1.0:
        raise ConfigError(f"dino.{name}={s[name]}: use a momentum in [0, 1] (DINO: center 0.9, teacher 0.996).")
    for name in ("warmup_teacher_temperature_epochs", "freeze_last_layer_epochs", "clip_grad"):
      if not s[name] >= 0:
        raise ConfigError(f"dino.{name}={s[name]} must be >= 0 (0 turns it off).")
    head = DINOHead(
      hidden_dim=int(s.head_hidden_dim),
      bottleneck_dim=int(s.bottleneck_dim),
      out_dim=int(s.out_dim),
      num_layers=int(s.head_layers),
      batch_norm=bool(s.head_batch_norm),
      norm_last_layer=bool(s.norm_last_layer),
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = DINONetwork(encoder=build_encoder(config), head=head)

  # --- schedules

  def epochs_to_steps(self, epochs: float) -> int:
    """``round(epochs * steps_per_epoch)``: a length given in epochs, in steps of this run."""
    if self.steps_per_epoch is None:
      raise ConfigError("dino's schedules are in epochs of the data: build the task with its data source.")
    return round(epochs * self.steps_per_epoch)

  def momentum(self, step: jax.Array) -> jax.Array:
    """tau of the teacher's EMA after the update of step ``step`` (steps done before it), float32 ``[]``."""
    if self.total_steps is None:
      raise ConfigError("dino's teacher momentum follows the run's length: build the task with its data source.")
    return cosine_momentum(step, self.total_steps, self.settings.base_momentum)

  def teacher_temperature(self, step: jax.Array) -> jax.Array:
    """The teacher temperature at step ``step``, float32 ``[]``: warm-up, then constant."""
    s = self.settings
    warmup = self.epochs_to_steps(s.warmup_teacher_temperature_epochs)
    return linear_warmup(step, s.warmup_teacher_temperature, s.teacher_temperature, warmup)

  @property
  def freeze_last_layer_steps(self) -> int:
    """The first updates whose last-layer gradient and update are zeroed."""
    return self.epochs_to_steps(self.settings.freeze_last_layer_epochs)

  # --- state

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Student variables, and in ``extra`` the teacher (a copy of the student) and a zero center."""
    variables = self.model.init(rng, (self.view_example(batch)[:, None],), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    teacher = {"params": params, "batch_stats": batch_stats}
    center = jnp.zeros((int(self.settings.out_dim),), jnp.float32)
    return {"params": params, "batch_stats": batch_stats, "extra": {"teacher": teacher, "center": center}}

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """The run's ``tx`` with the last layer frozen for ``freeze_last_layer_steps`` updates (its own
    copy of ``tx`` behind ``optim.frozen_until``: gradient and update zeroed, weight decay held
    back too, as the reference skips the layer), after per-tensor clipping at ``dino.clip_grad``."""
    steps = self.freeze_last_layer_steps
    if steps > 0:
      tx = optim.route(
        {"model": tx, "last_layer": optim.frozen_until(steps, tx)},
        lambda path: "last_layer" if path[: len(LAST_LAYER)] == LAST_LAYER else "model",
      )
    if self.settings.clip_grad > 0:
      tx = optax.chain(optim.clip_by_tensor_norm(float(self.settings.clip_grad)), tx)
    return tx

  # --- step

  def forward(self, variables: dict, groups: tuple):
    """Groups of crops through a network in train mode: ``(features, z, logits), new batch_stats``
    with ``[B, V, ...]`` outputs (``jssl.models.dino.DINONetwork``)."""
    outputs, updates = self.model.apply(variables, groups, train=True, mutable=["batch_stats"])
    return outputs, updates.get("batch_stats", {})

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``: features ``[B, F]`` of the student's
    encoder on view 1; ``extra`` with the new center and the teacher's new running averages."""
    global_views = jnp.stack(self.views(batch, rng), axis=1)  # [B, 2, S, S, C], example-major
    local = self.local_views(batch)  # [B, M, s, s, C] or None
    groups = (global_views,) if local is None else (global_views, local)
    (features, z, student), batch_stats = self.forward({"params": params, "batch_stats": batch_stats}, groups)
    teacher_variables = jax.lax.stop_gradient(extra["teacher"])  # no gradient into the teacher, ever
    (_, _, teacher), teacher_stats = self.forward(teacher_variables, (global_views,))
    student, teacher = jnp.swapaxes(student, 0, 1), jnp.swapaxes(teacher, 0, 1)  # [V, B, K], globals first
    s = self.settings
    temperature = self.teacher_temperature(step)
    center = extra["center"]
    loss = dino(student, teacher, center, student_temperature=s.student_temperature, teacher_temperature=temperature)
    metrics = {
      "embedding_std": jnp.mean(jnp.stack([embedding_std(z[:, v]) for v in range(global_views.shape[1])])),
      "teacher_entropy": dino_teacher_entropy(teacher, center, temperature),
      "teacher_temperature": temperature,
      "momentum": self.momentum(step),
    }
    extra = {
      "teacher": {"params": extra["teacher"]["params"], "batch_stats": teacher_stats},
      "center": dino_center_update(center, teacher, s.center_momentum),  # after the loss, as the reference
    }
    return loss, (batch_stats, extra, metrics, features[:, 0])

  def after_update(self, params, extra, step: jax.Array):
    """The teacher's parameters (encoder and head) one EMA step towards the updated student's."""
    teacher = optax.incremental_update(params, extra["teacher"]["params"], 1.0 - self.momentum(step))
    return {**extra, "teacher": {**extra["teacher"], "params": teacher}}

  def encoder_variables(self, params, batch_stats, extra=None, network=None) -> dict:
    """The teacher's encoder (default: what DINO evaluates), from ``extra``; or the student's."""
    if self.network_name(network) == "student":
      return super().encoder_variables(params, batch_stats, extra)
    if not extra or "teacher" not in extra:
      raise ConfigError("dino's teacher network lives in the run's extra state; pass the state's extra.")
    teacher = extra["teacher"]
    return {"params": teacher["params"]["encoder"], "batch_stats": teacher["batch_stats"].get("encoder", {})}
