"""MoCo v3 (Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers"): a query network learns to pick, among the keys of the whole batch, the
momentum network's key of the other view of its own image.

The base (online) network is the encoder, a projector (``MLPHead``: ``model.head_layers``
layers, ``model.head_hidden_dim`` wide, ``model.head_out_dim`` out, batch norm after every
layer, the last without affine parameters) and a predictor (``MLPHead``: 2 layers,
``moco_v3.predictor_hidden_dim`` wide, back to ``model.head_out_dim``, output norm
``moco_v3.predictor_out_norm``). The momentum network is the encoder and projector only, an
exponential moving average of the base one's. For views ``x1``, ``x2`` of a batch:

  q_i = predictor(projector(encoder(x_i)))            (base network, trained)
  k_i = projector_m(encoder_m(x_i))                   (momentum network, no gradient)
  loss = moco_v3(q1, k2) + moco_v3(q2, k1)            (``jssl.losses.moco_v3``)

where ``moco_v3(q, k) = 2 tau CE(q k^T / tau, arange(N))`` on L2-normalised rows: row ``i``'s
positive is key ``i``, the other N - 1 keys of the batch are its negatives. The keys are those
of the WHOLE global batch with no gather code: the loss is plain ``jnp`` over the global
``[N, D]`` arrays inside the jit step, which runs on a batch sharded over every device, so XLA
makes the ``q k^T`` product span all devices (the reference's ``concat_all_gather``), with the
right gradients. The same holds for batch norm: its statistics are the global batch's (the
reference's SyncBN).

Schedules: the momentum ``m`` rises from ``moco_v3.base_momentum`` (0.99) to 1 over training by
a half cosine (``jssl.schedules.cosine_momentum``, the reference's ``--moco-m-cos``, per step).
After each optimizer step (``after_update``) the momentum network's parameters become
``m * momentum + (1 - m) * base`` (``optax.incremental_update``). The learning rate is the
run's (``config.optim``).

Batch norm: as in the reference, each view goes through each network in its own pass, so the
statistics are per view; the momentum network runs in train mode (the current batch's
statistics) and keeps running averages of its own, in ``extra``; only the parameters are
averaged.

``extra`` holds ``{"momentum": {"params": {"encoder", "head"}, "batch_stats": {"encoder",
"head"}}}``; ``params`` and ``batch_stats`` are the base network's ``{"encoder", "head",
"predictor"}``. ``networks = ("base", "momentum")``: export and evaluation take the base
encoder (what the paper evaluates) unless ``--network momentum``.

Frozen patch projection (``moco_v3.freeze_patch_embed``, the paper's stability trick for ViTs,
the reference's ``--stop-grad-conv1``): the ViT's patch embedding (``encoder/patch_embed/proj``,
kernel and bias) keeps its random initial values. ``optimizer`` routes it to
``optax.set_to_zero`` (no update, no weight decay); its momentum copy, an average of equal
values, stays equal to it. A ResNet has no patch embedding: setting it there is an error.

Metrics: ``embedding_std`` (of the view-1 queries ``q1``, what the loss compares; collapse -> 0),
``momentum`` (this step's ``m``) and ``contrastive_top1`` (how often a query's most similar key
of the batch is its positive, both directions averaged).

Deliberate differences from the paper and facebookresearch/moco-v3:
* Heads. The paper's appendix describes a 3-layer projector and BN on the predictor's output;
  the released code uses them for ViTs (``MoCo_ViT``) but a 2-layer projector and no BN on the
  predictor's output for ResNets (``MoCo_ResNet``, ``last_bn=False``). Both are settings here
  (``model.head_layers``, ``moco_v3.predictor_out_norm``); the recipes follow the released code.
* The momentum update uses the base parameters after the step (BYOL's order); the reference
  updates at the start of the next iteration with that iteration's ``m``: the same average
  with the schedule one step earlier.
* ViT: the patch projection is frozen at jssl's initialisation (LeCun normal), not the
  reference's Xavier uniform; position embeddings are learned (and trained), where the
  reference's are fixed 2-D sin-cos; the [CLS] token is jssl's. Weight decay skips vectors,
  position embeddings and [CLS] (``jssl.optim``); the reference's AdamW decays everything.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import optim
from jssl.errors import ConfigError
from jssl.losses import embedding_std, moco_v3
from jssl.models import MLPHead, build_encoder, encoder_family
from jssl.models.heads import OUT_NORMS
from jssl.schedules import cosine_momentum
from jssl.tasks.views import ViewTask

# The momentum network is these parts of the base one (the predictor is the base's alone).
MOMENTUM_PARTS = ("encoder", "head")
# The ViT's patch projection, as a parameter path from the top of ``params``.
PATCH_PROJECTION = ("encoder", "patch_embed", "proj")


class MoCoV3Model(nn.Module):
  """Encoder, projector (``head``) and predictor; ``momentum_branch`` runs the first two only.

  ``images [N, S, S, C]`` -> ``(features [N, F], z [N, D], q [N, D])``.
  """

  encoder: nn.Module
  head: nn.Module
  predictor: nn.Module

  def __call__(self, images, *, train: bool):
    features, z = self.momentum_branch(images, train=train)
    return features, z, self.predictor(z, train=train)

  def momentum_branch(self, images, *, train: bool):
    """``(features [N, F], z [N, D])``: the network the momentum copy averages."""
    features = self.encoder(images, train=train)
    return features, self.head(features, train=train)


class MoCoV3(ViewTask):
  """The MoCo v3 pretext task (batches: ``jssl.tasks.views.ViewTask``)."""

  name = "moco_v3"
  networks = ("base", "momentum")

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.temperature = 1.0  # tau (the reference's --moco-t: 1.0 for ResNet-50, 0.2 for ViTs)
    c.base_momentum = 0.99  # EMA momentum at step 0, cosine to 1 at the end (--moco-m)
    c.predictor_hidden_dim = 4096  # the predictor's hidden width (--moco-mlp-dim); its output is model.head_out_dim
    # BN on the predictor's output: bn_no_affine (ViT reference code, the paper) | none (ResNet reference code)
    c.predictor_out_norm = "bn_no_affine"
    c.freeze_patch_embed = False  # ViTs: keep the random patch projection (--stop-grad-conv1; the ViT recipes: True)
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.moco_v3
    if not s.temperature > 0:
      raise ConfigError(f"moco_v3.temperature={s.temperature}: use a positive temperature (ResNet 1.0, ViT 0.2).")
    if not 0 <= s.base_momentum <= 1:
      raise ConfigError(f"moco_v3.base_momentum={s.base_momentum}: use a momentum in [0, 1] (the paper: 0.99).")
    if s.predictor_hidden_dim < 1:
      raise ConfigError(f"moco_v3.predictor_hidden_dim={s.predictor_hidden_dim}: use a positive width.")
    if s.predictor_out_norm not in OUT_NORMS:
      raise ConfigError(f"moco_v3.predictor_out_norm={s.predictor_out_norm!r}: choose one of {', '.join(OUT_NORMS)}.")
    if s.freeze_patch_embed and encoder_family(config.model.encoder) != "vit":
      raise ConfigError(
        f"moco_v3.freeze_patch_embed=True freezes a ViT's patch projection; {config.model.encoder} has none. "
        "Set it to False."
      )
    dtype = jnp.dtype(config.model.dtype)
    projector = MLPHead(
      hidden_dim=config.model.head_hidden_dim,
      out_dim=config.model.head_out_dim,
      num_layers=config.model.head_layers,
      out_norm="bn_no_affine",
      dtype=dtype,
    )
    predictor = MLPHead(
      hidden_dim=s.predictor_hidden_dim,
      out_dim=config.model.head_out_dim,
      num_layers=2,
      out_norm=s.predictor_out_norm,
      dtype=dtype,
    )
    self.model = MoCoV3Model(encoder=build_encoder(config), head=projector, predictor=predictor)

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Base variables ``{"encoder", "head", "predictor"}``; the momentum network starts as a copy."""
    variables = self.model.init(rng, self.view_example(batch), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    momentum = {
      "params": {k: params[k] for k in MOMENTUM_PARTS},
      "batch_stats": {k: batch_stats[k] for k in MOMENTUM_PARTS if k in batch_stats},
    }
    return {"params": params, "batch_stats": batch_stats, "extra": {"momentum": momentum}}

  def momentum(self, step: jax.Array) -> jax.Array:
    """The EMA momentum ``m`` of ``step`` (steps done before it), float32 ``[]``."""
    if self.total_steps is None:
      raise ConfigError("moco_v3's momentum schedule needs the run's length: build the task with its source.")
    return cosine_momentum(step, self.total_steps, self.settings.base_momentum)

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """The run's ``tx``; with ``freeze_patch_embed`` the patch projection gets ``set_to_zero``."""
    if not self.settings.freeze_patch_embed:
      return tx
    return optim.route(
      {"model": tx, "frozen": optax.set_to_zero()},
      lambda path: "frozen" if path[: len(PATCH_PROJECTION)] == PATCH_PROJECTION else "model",
    )

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``; features ``[B, F]`` of view 1 (base encoder)."""
    view1, view2 = self.views(batch, rng)

    def base(images, batch_stats):
      (features, _, q), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
      )
      return features, q, updates["batch_stats"]

    momentum_params = jax.lax.stop_gradient(extra["momentum"]["params"])

    def momentum_branch(images, batch_stats):
      (_, k), updates = self.model.apply(
        {"params": momentum_params, "batch_stats": batch_stats},
        images,
        train=True,
        mutable=["batch_stats"],
        method=MoCoV3Model.momentum_branch,
      )
      return jax.lax.stop_gradient(k), updates.get("batch_stats", {})

    # One pass per view and network: batch-norm statistics per view, as the reference.
    features, q1, batch_stats = base(view1, batch_stats)
    _, q2, batch_stats = base(view2, batch_stats)
    momentum_stats = extra["momentum"]["batch_stats"]
    k1, momentum_stats = momentum_branch(view1, momentum_stats)
    k2, momentum_stats = momentum_branch(view2, momentum_stats)

    tau = self.settings.temperature
    loss = moco_v3(q1, k2, temperature=tau) + moco_v3(q2, k1, temperature=tau)
    extra = {"momentum": {"params": extra["momentum"]["params"], "batch_stats": momentum_stats}}
    metrics = {
      "embedding_std": embedding_std(q1),
      "momentum": self.momentum(step),
      "contrastive_top1": (contrastive_top1(q1, k2) + contrastive_top1(q2, k1)) / 2,
    }
    return loss, (batch_stats, extra, metrics, features)

  def after_update(self, params, extra, step: jax.Array):
    """The momentum network moves to ``m * momentum + (1 - m) * base`` (``m = momentum(step)``)."""
    online = {k: params[k] for k in MOMENTUM_PARTS}
    averaged = optax.incremental_update(online, extra["momentum"]["params"], 1 - self.momentum(step))
    return {"momentum": {**extra["momentum"], "params": averaged}}

  def encoder_variables(self, params, batch_stats, extra=None, network=None) -> dict:
    """The base encoder (default) or, ``network="momentum"``, the momentum one with its own BN statistics."""
    if self.network_name(network) == "base":
      return super().encoder_variables(params, batch_stats, extra)
    momentum = extra["momentum"]
    return {"params": momentum["params"]["encoder"], "batch_stats": momentum["batch_stats"].get("encoder", {})}


def contrastive_top1(q: jax.Array, k: jax.Array) -> jax.Array:
  """Fraction of rows ``i`` whose most similar key (cosine) is ``k_i``: ``q [N, D]``, ``k [N, D]`` -> ``[]``.

  A diagnostic (no gradient): the loss's classification accuracy, over the keys of the batch.
  """
  q, k = jax.lax.stop_gradient((q, k))
  k = k / jnp.maximum(jnp.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
  # The query's norm does not change which key is nearest; only the keys need normalising.
  nearest = jnp.argmax(q @ k.T, axis=-1)
  return jnp.mean((nearest == jnp.arange(q.shape[0])).astype(jnp.float32))
