"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"): an online network learns to predict a
slowly moving target network's embedding of another view of the same image; no negatives.

The online network is encoder -> projector -> predictor (``jssl.models.siamese.SiameseNetwork``;
projector ``MLPHead`` from ``model.head_hidden_dim`` / ``head_out_dim`` / ``head_layers``, the
paper's 4096 / 256 / 2, no norm on its output; predictor a 2-layer ``MLPHead`` with
``byol.predictor_hidden_dim`` hidden units, 4096 in the paper, to the projector's width). The
target network is encoder -> projector with its own weights: an exponential moving average of
the online ones, never trained by gradient. With ``p_v`` the online prediction of view v and
``z'_v`` the target projection,

  loss = byol(p_1, z'_2) + byol(p_2, z'_1),   byol(p, z) = mean_i ||p_i/|p_i| - z_i/|z_i|||^2

(``jssl.losses.byol``, which stops the gradient of z). After every optimizer update the
target moves towards the new online weights: ``xi <- tau xi + (1 - tau) theta``, with
``tau = 1 - (1 - byol.base_momentum)(cos(pi k / K) + 1) / 2`` at step k of K
(``jssl.schedules.cosine_momentum``: 0.996 rising to 1). The views come from
``jssl.tasks.views.ViewTask``; the paper's asymmetric views (blur 1.0 / 0.1, solarize 0 / 0.2)
are set in the recipes through ``augment.view1`` / ``augment.view2``.

Batch norm: each view goes through each network on its own, as in the reference
(deepmind-research ``byol/byol_experiment.py``), so batch statistics are per view and, under
``jax.jit`` over the sharded batch, global (the reference's cross-replica BN). The target runs in
train mode too (statistics of the current batch) and keeps its own running averages, updated by
its forward passes; the EMA covers parameters only, as in the reference.

State: ``params`` = the online ``{"encoder", "projector", "predictor"}``; ``extra`` =
``{"target": {"params": {"encoder", "projector"}, "batch_stats": ...}}``, a copy of the online
network at initialisation. ``networks = ("online", "target")``: export and evaluation take the
online encoder (what the paper evaluates) unless ``--network target``, which takes the target's
weights and running averages.

Metrics: ``embedding_std`` (``jssl.losses.embedding_std`` of the online projector's outputs,
mean over the two views; collapse -> 0, healthy ~ 1/sqrt(head_out_dim)) and ``momentum`` (tau
used after this step's update).

Differences from the paper and the reference code, deliberate:

* Colour jitter: jssl's ``augment.jitter_strength`` s sets brightness, contrast and saturation
  to 0.8 s and hue to 0.2 s; the recipes' s = 0.5 gives BYOL's 0.4 / 0.4 / 0.1 for brightness,
  contrast and hue but saturation 0.4 instead of 0.2 (jssl's jitter has one strength).
* Crops: jssl's sampler is SimCLR's (``min_object_covered`` 0.1), which floors the crop's area
  at 10% of the image where BYOL's Inception crop goes down to 8%.
* The optimizer is jssl's (``optax.lars``); like the reference it leaves biases and batch-norm
  parameters out of weight decay and trust-ratio scaling (``jssl.optim`` decides by shape).
* The online linear probe is jssl's (Adam on detached view-1 features), not the reference's
  classifier trained alongside with the main optimizer.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl.errors import ConfigError
from jssl.losses import byol, embedding_std
from jssl.models import MLPHead, build_encoder
from jssl.models.siamese import SiameseNetwork
from jssl.schedules import cosine_momentum
from jssl.tasks.views import ViewTask

TARGET_PARTS = ("encoder", "projector")  # what the target network has of the online one


class BYOL(ViewTask):
  """The BYOL pretext task (batches: ``jssl.tasks.views.ViewTask``)."""

  name = "byol"
  networks = ("online", "target")

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.base_momentum = 0.996  # tau at step 0 of the target's EMA, cosine to 1 at the end (the paper's)
    c.predictor_hidden_dim = 4096  # the predictor MLP's hidden width (the paper's); its output is head_out_dim
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.byol
    if not 0.0 <= s.base_momentum <= 1.0:
      raise ConfigError(f"byol.base_momentum={s.base_momentum}: use an EMA momentum in [0, 1] (BYOL: 0.996).")
    if s.predictor_hidden_dim < 1:
      raise ConfigError(f"byol.predictor_hidden_dim={s.predictor_hidden_dim}: use a positive width (BYOL: 4096).")
    dtype = jnp.dtype(config.model.dtype)
    m = config.model
    projector = MLPHead(
      hidden_dim=m.head_hidden_dim, out_dim=m.head_out_dim, num_layers=m.head_layers, out_norm="none", dtype=dtype
    )
    predictor = MLPHead(
      hidden_dim=int(s.predictor_hidden_dim), out_dim=m.head_out_dim, num_layers=2, out_norm="none", dtype=dtype
    )
    self.model = SiameseNetwork(encoder=build_encoder(config), projector=projector, predictor=predictor)

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Online variables and the target, a copy of the online encoder and projector."""
    variables = self.model.init(rng, self.view_example(batch), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    target = {
      "params": {k: params[k] for k in TARGET_PARTS},
      "batch_stats": {k: batch_stats[k] for k in TARGET_PARTS if k in batch_stats},
    }
    return {"params": params, "batch_stats": batch_stats, "extra": {"target": target}}

  def momentum(self, step: jax.Array) -> jax.Array:
    """tau of the EMA after the update of step ``step`` (steps done before it), float32 ``[]``."""
    if self.total_steps is None:
      raise ConfigError("byol's EMA momentum follows the run's length: build the task with its data source.")
    return cosine_momentum(step, self.total_steps, self.settings.base_momentum)

  def forward(self, variables: dict, images: jax.Array, *, predict: bool):
    """One view through a network in train mode: ``(features, z, p or None), new batch_stats``."""
    outputs, updates = self.model.apply(variables, images, train=True, predict=predict, mutable=["batch_stats"])
    return outputs, updates.get("batch_stats", {})

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``: features ``[B, F]`` of the online
    encoder on view 1; ``extra`` with the target's new running averages."""
    view1, view2 = self.views(batch, rng)
    (features, z1, p1), batch_stats = self.forward({"params": params, "batch_stats": batch_stats}, view1, predict=True)
    (_, z2, p2), batch_stats = self.forward({"params": params, "batch_stats": batch_stats}, view2, predict=True)
    target = jax.lax.stop_gradient(extra["target"])  # no gradient into the target, ever
    (_, t1, _), target_stats = self.forward(target, view1, predict=False)
    (_, t2, _), target_stats = self.forward({**target, "batch_stats": target_stats}, view2, predict=False)
    loss = byol(p1, t2) + byol(p2, t1)
    metrics = {"embedding_std": (embedding_std(z1) + embedding_std(z2)) / 2, "momentum": self.momentum(step)}
    extra = {**extra, "target": {**extra["target"], "batch_stats": target_stats}}
    return loss, (batch_stats, extra, metrics, features)

  def after_update(self, params, extra, step: jax.Array):
    """The target's parameters one EMA step towards the updated online ones."""
    online = {k: params[k] for k in TARGET_PARTS}
    tau = self.momentum(step)
    target_params = optax.incremental_update(online, extra["target"]["params"], 1.0 - tau)
    return {**extra, "target": {**extra["target"], "params": target_params}}

  def encoder_variables(self, params, batch_stats, extra=None, network=None) -> dict:
    """The online encoder (default), or with ``network="target"`` the target's, from ``extra``."""
    if self.network_name(network) == "online":
      return super().encoder_variables(params, batch_stats, extra)
    if not extra or "target" not in extra:
      raise ConfigError("byol's target network lives in the run's extra state; pass the state's extra.")
    target = extra["target"]
    return {"params": target["params"]["encoder"], "batch_stats": target["batch_stats"].get("encoder", {})}
