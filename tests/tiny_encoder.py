"""A one-layer encoder for tests of what a task does around its encoder (its loss wiring, EMA,
optimizer routing, training dynamics): it compiles and trains in a fraction of resnet_tiny's
time. The real encoders are covered by each task's smoke run (tests/test_task_contracts.py,
tests/test_task_runs.py)."""

import flax.linen as nn


class TinyEncoder(nn.Module):
  """``[N, H, W, C]`` -> ReLU(Dense(flattened image)) ``[N, num_features]``."""

  num_features: int = 32

  @nn.compact
  def __call__(self, images, *, train: bool):
    del train
    return nn.relu(nn.Dense(self.num_features)(images.reshape(images.shape[0], -1)))


def with_tiny_encoder(task):
  """``task`` (one whose ``model`` has an ``encoder`` field) with a ``TinyEncoder`` in its model."""
  task.model = task.model.clone(encoder=TinyEncoder())
  return task
