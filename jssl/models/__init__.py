"""Encoders and heads. ``make_encoder(name, ...)`` is the one way to build an encoder by name."""

from jssl.models.heads import ProjectionHead
from jssl.models.resnet import STAGES, ResNet, resnet

ENCODERS = tuple(STAGES)


def make_encoder(name: str, **kwargs):
  """Encoder by name (one of ``ENCODERS``); kwargs go to the family's constructor."""
  if name in STAGES:
    return resnet(name, **kwargs)
  raise ValueError(f"Unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}.")


__all__ = ["ENCODERS", "ProjectionHead", "ResNet", "make_encoder", "resnet"]
