"""Encoders by name: ``make_encoder(name, ...)``, and ``build_encoder(config)`` for a run's ``config.model``
(every task, evaluation and export build their encoder with it)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl.errors import ConfigError
from jssl.models.resnet import STAGES, resnet
from jssl.models.vit import VARIANTS, auto_patch_size, vit

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


def encoder_kwargs(config: ml_collections.ConfigDict) -> dict:
  """``make_encoder`` keyword arguments for ``config.model``, JSON-ready (``dtype`` by name).

  Each family gets only its own: ResNets ``width_multiplier``, ``stem``, ``dtype``; ViTs
  ``patch_size`` (``model.patch_size``, or when that is 0 ``auto_patch_size(data.image_size)``),
  ``depth`` (``model.depth``, or when that is 0 the variant's) and ``dtype``. A field of the
  other family set away from its neutral value (``width_multiplier`` 1, ``patch_size`` and
  ``depth`` 0) is an error rather than silently ignored; ``stem`` always has a value, so
  ViTs ignore it.
  """
  model = config.model
  dtype = jnp.dtype(model.dtype).name
  if encoder_family(model.encoder) == "resnet":
    for key in ("patch_size", "depth"):
      if model[key] != 0:
        raise ConfigError(
          f"model.{key}={model[key]} is for ViTs; {model.encoder} is a ResNet, sized by its name "
          "and model.width_multiplier. Leave it at 0."
        )
    return {"width_multiplier": float(model.width_multiplier), "stem": str(model.stem), "dtype": dtype}
  if model.width_multiplier != 1.0:
    raise ConfigError(
      f"model.width_multiplier={model.width_multiplier} scales ResNet widths; a ViT's width comes "
      f"from its name ({', '.join(VARIANTS)}). Leave it at 1.0 for {model.encoder}."
    )
  size = int(config.data.image_size)
  patch_size = int(model.patch_size) or auto_patch_size(size)
  if patch_size < 0 or size % patch_size:
    raise ConfigError(
      f"model.patch_size={model.patch_size} does not split data.image_size={size} into "
      f"patches; use a divisor of {size}, or 0 for the default ({auto_patch_size(size)})."
    )
  if model.depth < 0:
    raise ConfigError(f"model.depth={model.depth}: give a positive number of blocks, or 0 for the variant's.")
  depth = int(model.depth) or VARIANTS[model.encoder][1]
  return {"patch_size": patch_size, "depth": depth, "dtype": dtype}


def build_encoder(config: ml_collections.ConfigDict) -> nn.Module:
  """The encoder described by ``config.model`` (shared by every task and by evaluation)."""
  kwargs = encoder_kwargs(config)
  return make_encoder(config.model.encoder, **{**kwargs, "dtype": jnp.dtype(kwargs["dtype"])})


def random_init(encoder: nn.Module, *, image_size: int, channels: int, seed: int) -> dict:
  """``encoder``'s variables (``params``, and ``batch_stats`` for a ResNet) initialised from
  ``jax.random.key(seed)`` for ``[1, image_size, image_size, channels]`` inputs: the random-init
  baseline of evaluation and fine-tuning. Jitted: a ViT initialised op by op takes seconds."""
  inputs = jnp.zeros((1, image_size, image_size, channels))
  return jax.jit(lambda key: encoder.init(key, inputs, train=False))(jax.random.key(seed))
