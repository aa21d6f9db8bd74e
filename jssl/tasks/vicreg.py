"""VICReg (Bardes, Ponce & LeCun 2022): variance, invariance and covariance regularisation of
two views' embeddings.

Two augmented views of each image go through one encoder and a 3-layer expander
(``jssl.tasks.joint_embedding``: each view on its own, batch-norm statistics per view, global
over devices) to ``z1, z2 [B, D]``. The loss (``jssl.losses.vicreg``)

  sim_weight * mean((z1 - z2)^2)                                   invariance
  + var_weight * (mean_j relu(1 - std(z1)_j) + (same for z2)) / 2  variance: every dimension
                                                                   keeps a std of at least 1
  + cov_weight * (sum_{i != j} Cov(z1)_ij^2 + (same for z2)) / D   covariance: decorrelated

with the unbiased (B - 1) variance (``+ 1e-4`` inside the square root) and covariance over the
global batch. The variance term is what prevents collapse, with neither negatives nor a target
network nor normalisation of the embeddings. Metrics: ``similarity``, ``variance``,
``covariance`` (the three terms, unweighted) and ``embedding_std`` (collapse monitor).

One learning rate for all parameters, as the reference (LARS at ``0.2 * B / 256``, biases and
batch-norm parameters excluded from weight decay and trust ratio: ``jssl.optim``'s rule). No
``extra`` state, no schedules besides the learning rate; the encoder is what is exported.

Differences from the reference code (facebookresearch/vicreg ``main_vicreg.py``):

* The expander's hidden Dense layers have no bias (``MLPHead``: the batch norm after each
  subtracts the mean, so a bias there changes nothing), the reference's have one. Its last
  Dense has a bias, the reference's none: every term is unchanged by adding one vector to all
  embeddings (the invariance term subtracts the views, the others their batch means), so its
  gradient is zero (up to rounding) and its value never matters.
* The learning rate decays to 0 (``jssl.optim``), the reference's to 0.001 of its peak.
"""

import jax
import ml_collections

from jssl.errors import ConfigError
from jssl.losses import embedding_std, vicreg_terms
from jssl.tasks.joint_embedding import JointEmbeddingTask

WEIGHTS = ("sim_weight", "var_weight", "cov_weight")


class VICReg(JointEmbeddingTask):
  """The VICReg pretext task (batches: ``jssl.tasks.views.ViewTask``)."""

  name = "vicreg"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.sim_weight = 25.0  # lambda, the invariance term's weight (paper and code)
    c.var_weight = 25.0  # mu, the variance term's
    c.cov_weight = 1.0  # nu, the covariance term's
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.vicreg
    for name in WEIGHTS:
      if not s[name] >= 0:
        raise ConfigError(f"vicreg.{name}={s[name]} must be >= 0 (the paper's: 25, 25, 1).")

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """Returns ``loss, (new_batch_stats, extra, metrics, features)``; features ``[B, F]`` of view 1.

    The loss is ``jssl.losses.vicreg`` of the two views' embeddings, summed here from the
    terms it is made of (``vicreg_terms``), which are also logged: one computation of the
    ``[D, D]`` covariances serves both.
    """
    z1, z2, features, batch_stats = self.embed(params, batch_stats, batch, rng)
    terms = vicreg_terms(z1, z2)
    s = self.settings
    loss = s.sim_weight * terms["similarity"] + s.var_weight * terms["variance"] + s.cov_weight * terms["covariance"]
    metrics = {"embedding_std": embedding_std(z1), **jax.lax.stop_gradient(terms)}
    return loss, (batch_stats, extra, metrics, features)
