"""The network of the methods that predict one view's embedding from another's (BYOL, SimSiam):
encoder -> projector -> predictor."""

import flax.linen as nn


class SiameseNetwork(nn.Module):
  """Images -> ``(features [N, F], projection z [N, D], prediction p [N, D] or None)``.

  Parameters (and batch statistics) are ``{"encoder", "projector", "predictor"}``. With
  ``predict=False`` the predictor is not applied, so variables without ``"predictor"`` are
  enough: BYOL's target network is ``{"encoder", "projector"}`` of the same module.
  """

  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module

  def __call__(self, images, *, train: bool, predict: bool = True):
    features = self.encoder(images, train=train)
    z = self.projector(features, train=train)
    return features, z, (self.predictor(z, train=train) if predict else None)
