"""SwAV (Caron et al. 2020): swapped prediction of online cluster codes, with multi-crop.

How do clustering methods get labels? SwAV's are made online, inside each step, for the
batch at hand (DeepCluster's, in ``jssl.tasks.deepcluster``, come from an offline k-means
over the whole dataset). Every view goes through the encoder, the projection head and L2
normalisation to ``z``; its scores against K learned prototypes ``c_k`` (unit vectors) are
``z . c_k``. The scores of the two large views, with the gradient stopped, become codes by
Sinkhorn-Knopp (``jssl.losses.swav.sinkhorn``): soft assignments in which every prototype
takes an equal share of the global batch, which is what rules out the trivial solution of
one cluster for everything. Then each view predicts the code of the *other* views of the
same image ("swapped prediction"):

  loss = mean over assigned views i in {1, 2}, over other views v != i, over the batch of
         - sum_k q_i[k] log softmax(z_v . C / temperature)[k]

Multi-crop (``augment.local_crops`` > 0, ``jssl.data.multicrop``) adds that many
low-resolution views of small regions (``augment.local_crop_size`` px, ``local_crop_area``,
sampled as torchvision's ``RandomResizedCrop``: no 0.1 area floor as for the large views);
they only predict, never give codes. Each resolution goes through the encoder as one batch
(its batch-norm statistics per resolution), and the projection head runs once on the features
of all crops together, as in the reference code (``resnet50.py``: ``forward_backbone`` per
resolution, ``forward_head`` on the concatenation). Views are made as
every view task's (``jssl.tasks.views.ViewTask``): SimCLR's augmentation (``config.augment``,
per-view overrides in ``augment.view1``/``view2``/``local``; the paper uses crop area (0.14, 1)
for the large crops with small crops), on the host or, without small crops, in the step.

The projection head is the reference's: Linear -> BN -> ReLU -> Linear with a bias and no
batch norm after it (``model.head_layers``, ``model.head_hidden_dim`` 0 = the encoder's width,
2048 on ResNet-50 as ``hidden_mlp``; ``model.head_out_dim`` 128 as ``feat_dim``), then L2
normalisation. (The first Dense has no bias: the batch norm after it removes one.)

Prototypes are a bias-free linear layer whose columns SwAV renormalises to unit length after
every update. Here the stored kernel is free and the loss normalises its columns before use:
the optimizer update stays a plain optax step (no projection outside it), the prototypes the
loss sees are always unit vectors, and the gradient reaching the raw kernel is the paper's
gradient projected onto the tangent of the sphere (scaled by 1/||column||). For the first
``freeze_prototypes_steps`` updates the prototypes' gradient and update are zeroed inside the
optimizer (``optimizer``), as SwAV does during the first epoch to let the network settle.

Not included: SwAV's feature queue for small batches.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import optim
from jssl.errors import ConfigError
from jssl.losses.swav import swapped_prediction_loss
from jssl.models import MLPHead, build_encoder
from jssl.models.swav import Prototypes, SwAVModel
from jssl.tasks.views import ViewTask

_PROTOTYPES = "prototypes"  # the top-level parameter group the optimizer gates


class SwAV(ViewTask):
  """The SwAV pretext task (batches: ``jssl.tasks.views.ViewTask``, with local crops)."""

  name = "swav"
  takes_local_crops = True

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.num_prototypes = 3000  # K (ImageNet); a few times the number of classes works for small sets
    c.temperature = 0.1
    c.epsilon = 0.05  # Sinkhorn's entropic regularisation
    c.sinkhorn_iterations = 3
    c.freeze_prototypes_steps = 313  # SwAV: the first epoch of ImageNet at batch 4096
    # Multi-crop: augment.local_crops (SwAV: 6), local_crop_size, local_crop_area.
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.swav
    if s.num_prototypes < 2:
      raise ConfigError(f"swav.num_prototypes={s.num_prototypes}: need at least 2 prototypes.")
    for name in ("temperature", "epsilon"):
      if not s[name] > 0:
        raise ConfigError(f"swav.{name}={s[name]} must be > 0.")
    if s.sinkhorn_iterations < 1:
      raise ConfigError(f"swav.sinkhorn_iterations={s.sinkhorn_iterations} must be >= 1.")
    if s.freeze_prototypes_steps < 0:
      raise ConfigError(f"swav.freeze_prototypes_steps={s.freeze_prototypes_steps} must be >= 0.")
    dtype = jnp.dtype(config.model.dtype)
    head = MLPHead(
      hidden_dim=config.model.head_hidden_dim,
      out_dim=config.model.head_out_dim,
      num_layers=config.model.head_layers,
      out_norm="none",
      dtype=dtype,
    )
    self.model = SwAVModel(
      encoder=build_encoder(config), head=head, prototypes=Prototypes(num_prototypes=int(s.num_prototypes))
    )

  def init(self, rng: jax.Array, batch: dict) -> dict:
    return self.model.init(rng, self.view_example(batch), train=False)

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """The run's ``tx``; the prototypes get their own copy of it with the gradient (before)
    and the update (after) zeroed for the first ``freeze_prototypes_steps`` updates
    (``optim.route`` and ``optim.frozen_until``).

    Zeroing the gradient keeps momentum free of the frozen steps; zeroing the update also
    holds back weight decay. The copy keeps its own step count, so its learning-rate
    schedule runs in step with the rest.
    """
    steps = int(self.settings.freeze_prototypes_steps)
    if steps == 0:
      return tx
    return optim.route(
      {"model": tx, _PROTOTYPES: optim.frozen_until(steps, tx)},
      lambda path: _PROTOTYPES if path[0] == _PROTOTYPES else "model",
    )

  def resolutions(self, batch: dict, rng: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """``(large [B * 2, S, S, C], small [B * M, s, s, C] or None)``, example-major (image 0's
    views first): merging the leading axes of a batch-sharded array moves no data."""
    large = jnp.stack(self.views(batch, rng), axis=1)
    large = large.reshape((-1, *large.shape[2:]))
    small = self.local_views(batch)
    return large, None if small is None else small.reshape((-1, *small.shape[2:]))

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``; features ``[B, F]`` of view 1."""
    batch_size = batch["label"].shape[0]
    large, small = self.resolutions(batch, rng)

    (features, every_score), updates = self.model.apply(
      {"params": params, "batch_stats": batch_stats}, large, small, train=True, mutable=["batch_stats"]
    )
    batch_stats = updates["batch_stats"]

    def per_view(rows):
      """Example-major rows ``[B * V, K]`` -> ``[V, B, K]``."""
      return jnp.swapaxes(rows.reshape(batch_size, -1, rows.shape[-1]), 0, 1)

    features = features.reshape(batch_size, -1, features.shape[-1])  # [B, 2, F]
    scores = per_view(every_score[: large.shape[0]])
    if small is not None:
      scores = jnp.concatenate([scores, per_view(every_score[large.shape[0] :])])
    s = self.settings
    loss, codes = swapped_prediction_loss(
      scores, temperature=s.temperature, epsilon=s.epsilon, iterations=s.sinkhorn_iterations
    )
    q = codes[0]
    metrics = {
      "code_entropy": jnp.mean(-jnp.sum(q * jnp.log(jnp.maximum(q, 1e-30)), axis=-1)),
      "prototypes_used": jnp.sum(jnp.max(jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1]), axis=0)),
    }
    return loss, (batch_stats, extra, metrics, features[:, 0])
