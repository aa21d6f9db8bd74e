"""Encoders, heads and the task models built from them."""

from jssl.models.factory import (
  ENCODERS,
  build_encoder,
  encoder_family,
  encoder_kwarg_names,
  encoder_kwargs,
  make_encoder,
  random_init,
)
from jssl.models.heads import EncoderWithHead, MLPHead, ProjectionHead
from jssl.models.resnet import ResNet, resnet
from jssl.models.vit import ViT, auto_patch_size, vit

__all__ = [
  "ENCODERS",
  "EncoderWithHead",
  "MLPHead",
  "ProjectionHead",
  "ResNet",
  "ViT",
  "auto_patch_size",
  "build_encoder",
  "encoder_family",
  "encoder_kwarg_names",
  "encoder_kwargs",
  "make_encoder",
  "random_init",
  "resnet",
  "vit",
]
