"""The base of the joint-embedding tasks with one network and no target (Barlow Twins, VICReg):
an encoder and an MLP projector ("expander" in VICReg) embed each of two augmented views of an
image; the task's loss compares the two ``[B, D]`` batches of embeddings.

The projector is ``jssl.models.MLPHead`` with ``model.head_layers`` Dense layers (the papers:
3, 8192-8192-8192 on ResNet-50), batch norm and ReLU after every hidden one and a plain Dense
at the end (``out_norm="none"``). Each view goes through the network on its own, as in the
reference implementations (``projector(backbone(y1))``, then ``projector(backbone(y2))``), so
batch norm normalises each view by its own statistics; under ``jax.jit`` over a batch sharded
on every device those statistics are the global batch's (the references' SyncBatchNorm). The
running averages are updated twice per step, by view 1 then view 2, as the references' two
forward passes do.

There is no state besides the trained network (``extra`` is ``{}``) and one encoder to export.
"""

import jax
import jax.numpy as jnp
import ml_collections

from jssl.models import EncoderWithHead, MLPHead, build_encoder
from jssl.tasks.views import ViewTask


class JointEmbeddingTask(ViewTask):
  """Encoder + projector on each view separately; subclasses define ``loss`` from ``embed``."""

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    projector = MLPHead(
      hidden_dim=config.model.head_hidden_dim,
      out_dim=config.model.head_out_dim,
      num_layers=config.model.head_layers,
      hidden_norm=True,
      out_norm="none",
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = EncoderWithHead(encoder=build_encoder(config), head=projector)

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Variables ``{"params": {"encoder", "head"}, "batch_stats": ...}`` for views of ``batch``."""
    return self.model.init(rng, self.view_example(batch), train=False)

  def embed(self, params, batch_stats, batch: dict, rng: jax.Array):
    """The two views of ``batch`` through encoder and projector, one pass each.

    Returns ``(z1, z2, features, batch_stats)``: the embeddings ``[B, D]`` float32 of view 1
    and view 2, the encoder's features ``[B, F]`` of view 1 (for the online probe), and the
    batch-norm running averages after both passes.
    """
    outputs = []
    for view in self.views(batch, rng):
      (features, z), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, view, train=True, mutable=["batch_stats"]
      )
      batch_stats = updates["batch_stats"]
      outputs.append((features, z))
    (features, z1), (_, z2) = outputs
    return z1, z2, features, batch_stats
