"""The views a task asks for: N global views and M local crops (multi-crop), each view with
its own ``AugmentConfig``, built from the shared ``config.augment`` section.

Layout of ``config.augment`` (``jssl.config.default_config``):

* ``augment.<field>``: every ``AugmentConfig`` field but ``image_size`` (that is
  ``data.image_size``), shared by all views.
* ``augment.view1``, ``augment.view2``: per-view overrides of global views 1 and 2; a
  field left ``None`` takes the shared value (BYOL: ``view1.blur_prob = 1.0``;
  ``view2.blur_prob = 0.1``, ``view2.solarize_prob = 0.2``). Global views past the second
  take the shared values.
* ``augment.local_crops`` (M, 0 = none), ``local_crop_size`` (side in px; 0 = 3/7 of
  ``data.image_size``, SwAV's and DINO's 96/224), ``local_crop_area`` (SwAV (0.05, 0.14),
  DINO (0.05, 0.4)), and ``augment.local``: overrides for the local crops, as ``view1``
  but without ``crop_area`` (that is ``local_crop_area``; DINO: ``local.blur_prob = 0.5``).

Crop areas: global views are SimCLR's, whose sampler (TF's ``min_object_covered`` 0.1)
floors every crop's area at 10% of the image. Local crops follow SwAV's and DINO's
torchvision ``RandomResizedCrop(scale=local_crop_area)``, which has no such floor, so
their ``AugmentConfig.crop_min_covered`` is 0: the area spans all of ``local_crop_area``
(e.g. 0.05-0.14, not 0.1-0.14). ``crop_min_covered`` is set here by the view's role and
is not a field of ``config.augment``.

``multi_crop_configs`` turns the section into a ``MultiCrop``; ``multi_crop_views`` makes
the views of one image in a ``tf.data`` map and ``multi_crop_spec`` gives the batch shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jssl.data import augment
from jssl.data.augment import AugmentConfig
from jssl.data.tf_host import tf
from jssl.errors import ConfigError

# AugmentConfig fields a view may set for itself (image_size is the view's size, not a setting;
# crop_min_covered follows the view's role: SimCLR's for global views, torchvision's 0 for local crops).
VIEW_FIELDS = tuple(
  f.name for f in dataclasses.fields(AugmentConfig) if f.name not in ("image_size", "crop_min_covered")
)
# torchvision's RandomResizedCrop (SwAV's and DINO's local crops): only the area range bounds a crop.
LOCAL_MIN_COVERED = 0.0
# The local crops' area has its own shared field, augment.local_crop_area.
LOCAL_FIELDS = tuple(name for name in VIEW_FIELDS if name != "crop_area")
# Sections of per-view overrides in config.augment, and the fields each holds.
OVERRIDE_SECTIONS = {"view1": VIEW_FIELDS, "view2": VIEW_FIELDS, "local": LOCAL_FIELDS}
# Fraction of data.image_size that local_crop_size = 0 means: SwAV's and DINO's 96 / 224.
LOCAL_SIZE_FRACTION = 3 / 7


def override_section(fields: tuple[str, ...] = VIEW_FIELDS) -> ml_collections.ConfigDict:
  """A config section of per-view overrides: every field in ``fields``, ``None`` (= the shared value).

  ``ml_collections`` lets a ``None`` field take a value of any type once, from a recipe,
  from ``--config.augment.view2.blur_prob=0.1`` or from a saved config's JSON.
  """
  return ml_collections.ConfigDict(dict.fromkeys(fields), type_safe=True)


@dataclasses.dataclass(frozen=True)
class MultiCrop:
  """The views of one image: ``global_configs[i]`` makes ``view{i + 1}``, ``local_config`` each of ``local_crops``.

  Attributes:
    global_configs: one ``AugmentConfig`` per global view, at ``data.image_size``.
    local_crops: M, the number of local crops (0: none).
    local_config: the local crops' ``AugmentConfig`` (their size and area, ``crop_min_covered`` 0), or
      None when M = 0.
  """

  global_configs: tuple[AugmentConfig, ...]
  local_crops: int = 0
  local_config: AugmentConfig | None = None

  def __post_init__(self):
    if not self.global_configs:
      raise ConfigError("MultiCrop needs at least one global view.")
    if self.local_crops < 0 or (self.local_crops > 0) != (self.local_config is not None):
      raise ConfigError(
        f"MultiCrop: local_crops={self.local_crops} needs a local_config exactly when > 0 "
        f"(got {'one' if self.local_config else 'none'})."
      )

  @property
  def view_names(self) -> tuple[str, ...]:
    """``("view1", ..., "viewN")``: the batch keys of the global views."""
    return tuple(f"view{i + 1}" for i in range(len(self.global_configs)))

  @property
  def configs(self) -> tuple[AugmentConfig, ...]:
    """Every view's config, global views first, then the ``local_crops`` local ones."""
    return self.global_configs + (self.local_config,) * self.local_crops


def _view_config(augment_section: Mapping[str, Any], section: str, base: Mapping[str, Any]) -> AugmentConfig:
  """``base`` (AugmentConfig fields) with the non-None fields of ``augment_section[section]`` in place."""
  overrides = {k: v for k, v in dict(augment_section[section]).items() if v is not None}
  unknown = sorted(set(overrides) - set(OVERRIDE_SECTIONS[section]))
  if unknown:
    raise ConfigError(
      f"augment.{section}: unknown field(s) {unknown}; known: {sorted(OVERRIDE_SECTIONS[section])}"
      + (" (the local crops' area is augment.local_crop_area)." if "crop_area" in unknown else ".")
    )
  try:
    return AugmentConfig.from_dict({**base, **overrides})
  except ConfigError as e:
    raise ConfigError(f"augment.{section}: {e}") from None


def multi_crop_configs(augment_section: Mapping[str, Any], *, image_size: int, global_views: int = 2) -> MultiCrop:
  """One ``AugmentConfig`` per view from ``config.augment`` (layout in the module docstring).

  Args:
    augment_section: ``config.augment``.
    image_size: ``data.image_size``, the global views' side.
    global_views: N, how many global views the task takes.

  Returns:
    The ``MultiCrop``; its local crops (``augment.local_crops``, possibly 0) are the task's
    to accept or refuse. Global views keep SimCLR's crop floor (``crop_min_covered`` 0.1),
    local crops have none (``LOCAL_MIN_COVERED``, torchvision's rule).
  """
  shared = {name: augment_section[name] for name in VIEW_FIELDS}
  shared["image_size"] = int(image_size)
  try:
    AugmentConfig.from_dict(shared)
  except ConfigError as e:
    raise ConfigError(f"augment: {e}") from None
  sections = ("view1", "view2")
  global_configs = tuple(
    _view_config(augment_section, sections[i], shared) if i < len(sections) else AugmentConfig.from_dict(shared)
    for i in range(global_views)
  )
  local_crops = augment_section["local_crops"]
  if isinstance(local_crops, bool) or not isinstance(local_crops, int) or local_crops < 0:
    raise ConfigError(f"augment.local_crops={local_crops!r} must be an int >= 0 (0 turns multi-crop off).")
  if not local_crops:
    return MultiCrop(global_configs=global_configs)
  size = int(augment_section["local_crop_size"]) or max(1, round(image_size * LOCAL_SIZE_FRACTION))
  if not 0 < size <= image_size:
    raise ConfigError(
      f"augment.local_crop_size={augment_section['local_crop_size']} must be between 1 and "
      f"data.image_size={image_size} (0: 3/7 of it)."
    )
  local_base = {
    **shared,
    "image_size": size,
    "crop_area": augment_section["local_crop_area"],
    "crop_min_covered": LOCAL_MIN_COVERED,
  }
  try:
    AugmentConfig.from_dict(local_base)
  except ConfigError as e:
    raise ConfigError(f"augment.local_crop_area / local_crop_size: {e}") from None
  return MultiCrop(
    global_configs=global_configs,
    local_crops=local_crops,
    local_config=_view_config(augment_section, "local", local_base),
  )


def multi_crop_views(image: tf.Tensor, seed: tf.Tensor, *, crops: MultiCrop) -> dict[str, tf.Tensor]:
  """The views of one image, for a ``tf.data`` map.

  Args:
    image: float32 ``[H, W, C]`` in [0, 1].
    seed: int32/int64 ``[2]``.
    crops: the views to make.

  Returns:
    ``{"view1": [S, S, C], ..., "viewN": ..., "local": [M, s, s, C]}`` float32 in [0, 1]
    (``"local"`` only when M > 0). The global views are ``augment.views(image, seed)`` of
    their configs (two global views of one config are ``augment.two_views``'); the local
    crops take their seeds from ``seed`` folded with 1, so adding them leaves the global views as they were.
  """
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  out = dict(zip(crops.view_names, augment.views(image, seed, configs=crops.global_configs)))
  if crops.local_crops:
    local_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    out["local"] = tf.stack(augment.views(image, local_seed, configs=(crops.local_config,) * crops.local_crops))
  return out


def multi_crop_spec(crops: MultiCrop, *, batch_size: int, channels: int) -> dict[str, jax.ShapeDtypeStruct]:
  """Global batch shapes of ``multi_crop_views``: ``viewI`` ``[B, S, S, C]``, ``local`` ``[B, M, s, s, C]`` float32."""
  spec = {
    name: jax.ShapeDtypeStruct((batch_size, c.image_size, c.image_size, channels), jnp.float32)
    for name, c in zip(crops.view_names, crops.global_configs)
  }
  if crops.local_crops:
    size = crops.local_config.image_size
    spec["local"] = jax.ShapeDtypeStruct((batch_size, crops.local_crops, size, size, channels), jnp.float32)
  return spec


__all__ = [
  "LOCAL_FIELDS",
  "LOCAL_MIN_COVERED",
  "LOCAL_SIZE_FRACTION",
  "OVERRIDE_SECTIONS",
  "VIEW_FIELDS",
  "MultiCrop",
  "multi_crop_configs",
  "multi_crop_spec",
  "multi_crop_views",
  "override_section",
]
