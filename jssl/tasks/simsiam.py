"""SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation Learning"): BYOL without the
momentum encoder. One network predicts its own embedding of another view of the same image, and
a stop-gradient on the predicted side is all that keeps it from collapsing.

The network is encoder -> projector -> predictor (``jssl.models.siamese.SiameseNetwork``):
projector ``MLPHead`` from ``model.head_hidden_dim`` / ``head_out_dim`` / ``head_layers`` (the
paper's 2048 / 2048 / 3) ending in batch norm without scale or shift (``bn_no_affine``);
predictor a bottleneck ``MLPHead`` of 2 layers, ``simsiam.predictor_hidden_dim`` hidden units
(512) with BN and ReLU, and a plain linear output of the projector's width. With ``z_v`` the
projection and ``p_v`` the prediction of view v,

  loss = (simsiam(p_1, sg(z_2)) + simsiam(p_2, sg(z_1))) / 2,   simsiam(p, z) = -mean_i cos(p_i, z_i)

(``jssl.losses.simsiam``). ``simsiam.stop_gradient=False`` drops ``sg``: the paper's ablation
(Sec. 4.1, Fig. 2), in which the outputs collapse to a constant at once (``embedding_std`` -> 0;
``tests/test_simsiam.py`` shows it). No schedule of its own: the learning rate is the run's
(``jssl.optim``), and with ``simsiam.fix_predictor_lr`` the predictor's stays at its peak
(below).

Batch norm: each view goes through the network on its own (the reference's ``model(x1, x2)``
does the same), so batch statistics are per view and, under ``jax.jit`` over the sharded batch,
global (the reference's SyncBN). ``extra`` is empty; there is one encoder (``networks = ()``),
the one exported and evaluated.

Metrics: ``embedding_std`` (``jssl.losses.embedding_std`` of the projector's outputs z, the
paper's collapse monitor, mean over the two views; collapse -> 0, healthy ~ 1/sqrt(head_out_dim)).

Differences from the paper and the reference code (facebookresearch/simsiam), deliberate:

* ``simsiam.fix_predictor_lr`` (the reference's ``--fix-pred-lr``, which its README's command
  passes; Table 1(d) of the paper: 68.1% vs 67.7%): the predictor gets SGD at the constant peak
  learning rate (``optim.base_lr`` scaled by the batch), no warm-up and no decay, with the
  run's momentum and weight decay, through ``jssl.optim.route``. Only with ``optim.name=sgd``
  (the paper's optimizer): for LARS or AdamW it would need a copy of that optimizer, so it is
  refused there. Off by default, as in the paper's baseline and the reference's argparse default.
* Weight decay: the reference's SGD decays every parameter; jssl's decays kernels only (biases
  and batch-norm parameters are left out, ``jssl.optim``).
* The projector's last linear layer has no bias (batch norm follows); the reference's has one
  but freezes it (``requires_grad = False``), which is the same function.
* Colour jitter: the recipes' ``augment.jitter_strength`` 0.5 is MoCo v2's (0.4, 0.4, 0.4, 0.1),
  the reference's; crops follow jssl's SimCLR sampler, whose area floor is 10% of the image
  (the ImageNet recipe's (0.2, 1) area range is not affected).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import optim
from jssl.errors import ConfigError
from jssl.losses import embedding_std, simsiam
from jssl.models import MLPHead, build_encoder
from jssl.models.siamese import SiameseNetwork
from jssl.tasks.views import ViewTask

PREDICTOR = "predictor"  # the top-level parameter group that fix_predictor_lr routes


class SimSiam(ViewTask):
  """The SimSiam pretext task (batches: ``jssl.tasks.views.ViewTask``)."""

  name = "simsiam"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.predictor_hidden_dim = 512  # the predictor's bottleneck (the paper's: a quarter of its 2048 output)
    c.stop_gradient = True  # False: the paper's collapse ablation (the gradient also flows through z)
    c.fix_predictor_lr = False  # True: the predictor's lr stays at the peak (the reference's --fix-pred-lr; SGD only)
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.simsiam
    if s.predictor_hidden_dim < 1:
      raise ConfigError(f"simsiam.predictor_hidden_dim={s.predictor_hidden_dim}: use a positive width (SimSiam: 512).")
    if s.fix_predictor_lr and config.optim.name != "sgd":
      raise ConfigError(
        f"simsiam.fix_predictor_lr=True needs optim.name='sgd' (the paper's), not {config.optim.name!r}; "
        "set --config.simsiam.fix_predictor_lr=False or --config.optim.name=sgd."
      )
    dtype = jnp.dtype(config.model.dtype)
    m = config.model
    projector = MLPHead(
      hidden_dim=m.head_hidden_dim,
      out_dim=m.head_out_dim,
      num_layers=m.head_layers,
      out_norm="bn_no_affine",
      dtype=dtype,
    )
    predictor = MLPHead(
      hidden_dim=int(s.predictor_hidden_dim), out_dim=m.head_out_dim, num_layers=2, out_norm="none", dtype=dtype
    )
    self.model = SiameseNetwork(encoder=build_encoder(config), projector=projector, predictor=predictor)

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Variables ``{"params", "batch_stats"}`` of encoder, projector and predictor."""
    return self.model.init(rng, self.view_example(batch), train=False)

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """The run's ``tx``; with ``fix_predictor_lr`` the predictor gets SGD at the constant peak
    learning rate, with the run's momentum and weight decay (kernels only, as ``jssl.optim``)."""
    if not self.settings.fix_predictor_lr:
      return tx
    o = self.config.optim
    peak = optim.scaled_learning_rate(o.base_lr, batch_size=self.config.train.batch_size, scaling=o.lr_scaling)
    weight_decay = o.weight_decay
    if o.weight_decay_end >= 0:
      weight_decay = optim.weight_decay_schedule(
        start=o.weight_decay, end=o.weight_decay_end, total_steps=self.total_steps
      )
    fixed = optax.chain(
      optax.add_decayed_weights(weight_decay, mask=optim.kernel_mask),
      optax.sgd(peak, momentum=o.momentum, nesterov=False),
    )
    return optim.route({"model": tx, PREDICTOR: fixed}, lambda path: PREDICTOR if path[0] == PREDICTOR else "model")

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``; features ``[B, F]`` of view 1."""
    outputs = []
    for view in self.views(batch, rng):  # each view on its own: BN statistics per view
      out, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, view, train=True, mutable=["batch_stats"]
      )
      outputs.append(out)
      batch_stats = updates["batch_stats"]
    (features, z1, p1), (_, z2, p2) = outputs
    stop = bool(self.settings.stop_gradient)
    loss = (simsiam(p1, z2, stop_gradient=stop) + simsiam(p2, z1, stop_gradient=stop)) / 2
    metrics = {"embedding_std": (embedding_std(z1) + embedding_std(z2)) / 2}
    return loss, (batch_stats, extra, metrics, features)
