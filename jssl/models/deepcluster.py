"""DeepCluster's model: the encoder and a linear classifier over the k-means clusters."""

import flax.linen as nn


class DeepClusterModel(nn.Module):
  """Encoder and linear classifier over the clusters: images -> (features [N, F], logits [N, k])."""

  encoder: nn.Module
  num_clusters: int

  @nn.compact
  def __call__(self, images, *, train: bool):
    features = self.encoder(images, train=train)
    logits = nn.Dense(self.num_clusters, kernel_init=nn.initializers.normal(0.01), name="classifier")(features)
    return features, logits
