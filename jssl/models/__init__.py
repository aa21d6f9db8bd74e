"""Encoders and heads. ``make_encoder(name, ...)`` is the one way to build an encoder by name."""

from jssl.errors import ConfigError
from jssl.models.heads import EncoderWithHead, ProjectionHead
from jssl.models.resnet import STAGES, ResNet, resnet
from jssl.models.vit import VARIANTS, ViT, auto_patch_size, vit

ENCODERS = (*STAGES, *VARIANTS)

# Each family's constructor and the keyword arguments it takes (also what an export records).
_FAMILIES = {
  "resnet": (STAGES, resnet, ("width_multiplier", "stem", "dtype")),
  "vit": (VARIANTS, vit, ("patch_size", "depth", "dtype")),
}


def encoder_family(name: str) -> str:
  """``"resnet"`` or ``"vit"`` for an encoder name in ``ENCODERS``."""
  for family, (names, _, _) in _FAMILIES.items():
    if name in names:
      return family
  raise ConfigError(f"Unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}.")


def encoder_kwarg_names(name: str) -> tuple[str, ...]:
  """The keyword arguments ``make_encoder(name, ...)`` accepts, e.g. ``("patch_size", "depth", "dtype")``."""
  return _FAMILIES[encoder_family(name)][2]


def make_encoder(name: str, **kwargs):
  """Encoder by name (one of ``ENCODERS``); kwargs go to the family's constructor and must be
  among ``encoder_kwarg_names(name)``."""
  _, constructor, accepted = _FAMILIES[encoder_family(name)]
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ConfigError(f"{name} takes {', '.join(accepted)}; got unexpected {', '.join(unknown)}.")
  return constructor(name, **kwargs)


__all__ = [
  "ENCODERS",
  "EncoderWithHead",
  "ProjectionHead",
  "ResNet",
  "ViT",
  "auto_patch_size",
  "encoder_family",
  "encoder_kwarg_names",
  "make_encoder",
  "resnet",
  "vit",
]
