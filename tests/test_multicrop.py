"""Tests of the views a task asks for (jssl.data.multicrop): per-view configs from
``config.augment`` and multi-crop views of one image on the host."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from jssl import config as config_lib
from jssl.data import augment, multicrop
from jssl.data.augment import AugmentConfig
from jssl.tasks.simclr import SimCLR

S = 16


def _section(**fields):
  """``config.augment`` of the default config, with ``fields`` (dotted: ``view2.blur_prob``) set."""
  config = config_lib.default_config()
  config.lock()
  config_lib.apply_overrides(config, [f"--config.augment.{k.replace('__', '.')}={v}" for k, v in fields.items()])
  return config.augment


def _shared(section, image_size=S):
  return AugmentConfig.from_dict({**{k: section[k] for k in multicrop.VIEW_FIELDS}, "image_size": image_size})


def test_default_section_gives_two_equal_views_and_no_local_crops():
  section = _section()
  crops = multicrop.multi_crop_configs(section, image_size=S)
  assert crops.global_configs == (_shared(section),) * 2
  assert crops.local_crops == 0 and crops.local_config is None
  assert crops.view_names == ("view1", "view2")
  assert set(section.view1) == set(multicrop.VIEW_FIELDS) and set(section.local) == set(multicrop.LOCAL_FIELDS)
  assert all(v is None for v in [*section.view1.values(), *section.view2.values(), *section.local.values()])
  assert multicrop.multi_crop_configs(section, image_size=S, global_views=3).global_configs == (_shared(section),) * 3


def test_overrides_reach_only_their_view():
  """BYOL's and DINO's settings: each section changes exactly its fields of exactly its views."""
  section = _section(
    view1__blur_prob=1.0,
    view2__blur_prob=0.1,
    view2__solarize_prob=0.2,
    view2__crop_area="(0.3, 1.0)",
    local__blur_prob=0.5,
    local_crops=3,
    local_crop_area="(0.05, 0.4)",
  )
  crops = multicrop.multi_crop_configs(section, image_size=S, global_views=3)
  shared = _shared(section)
  assert shared.blur_prob == 0.0 and shared.solarize_prob == 0.0  # the defaults
  view1, view2, view3 = crops.global_configs
  local = crops.local_config

  def changed(config):
    return {f for f in (*multicrop.VIEW_FIELDS, "image_size") if getattr(config, f) != getattr(shared, f)}

  assert changed(view1) == {"blur_prob"} and view1.blur_prob == 1.0
  assert changed(view2) == {"blur_prob", "solarize_prob", "crop_area"}
  assert (view2.blur_prob, view2.solarize_prob, view2.crop_area) == (0.1, 0.2, (0.3, 1.0))
  assert view3 == shared  # past the second, the shared values
  assert changed(local) == {"blur_prob", "crop_area", "image_size"}
  assert (local.blur_prob, local.crop_area, local.image_size) == (0.5, (0.05, 0.4), 7)  # 3/7 of 16
  assert crops.configs == (view1, view2, view3, local, local, local)


def test_overrides_survive_the_command_line_and_json():
  """None fields take a float or a tuple from a recipe, the CLI and a saved config's JSON."""
  config = config_lib.default_config()
  config.augment.view1.blur_prob = 1.0  # as a recipe does
  config.lock()
  config_lib.apply_overrides(
    config, ["--config.augment.view2.solarize_prob=0.2", "--config.augment.view2.blur_sigma=(0.5, 1.5)"]
  )
  config_lib.apply_overrides(config, ["--config.augment.view2.solarize_prob=0.3"])  # now a float field
  assert config.augment.view2.solarize_prob == 0.3 and config.augment.view2.blur_sigma == (0.5, 1.5)
  with pytest.raises(ValueError, match="float"):
    config_lib.apply_overrides(config, ["--config.augment.view2.solarize_prob=high"])
  with pytest.raises(ValueError, match="literal"):
    config_lib.apply_overrides(config, ["--config.augment.view2.flip_prob=high"])
  restored = config_lib.from_json(config_lib.to_json(config))
  assert restored.augment.view1.blur_prob == 1.0 and restored.augment.view2.solarize_prob == 0.3
  assert restored.augment.view2.blur_prob is None
  before = multicrop.multi_crop_configs(config.augment, image_size=S)
  assert multicrop.multi_crop_configs(restored.augment, image_size=S) == before
  assert before.global_configs[1].blur_sigma == (0.5, 1.5)


def test_runs_saved_with_swav_small_crops_read_as_local_crops():
  saved = config_lib.default_config().to_dict()
  saved["swav"].update(small_crops=6, small_crop_size=8, small_crop_area=[0.05, 0.2])
  config = config_lib.from_json(json.dumps(saved))
  assert (config.augment.local_crops, config.augment.local_crop_size) == (6, 8)
  assert tuple(config.augment.local_crop_area) == (0.05, 0.2) and "small_crops" not in config.swav


@pytest.mark.parametrize(
  "fields, match",
  [
    (dict(view2__blur_prob=1.5), "augment.view2.*blur_prob"),
    (dict(local_crops=2, local_crop_size=17), "local_crop_size"),
    (dict(local_crops=2, local_crop_area="(0.5, 0.1)"), "local_crop_area"),
    (dict(local_crops=-1), "local_crops"),
    (dict(blur_prob=2.0), "augment.*blur_prob"),
  ],
)
def test_bad_settings_name_the_field(fields, match):
  with pytest.raises(ValueError, match=match):
    multicrop.multi_crop_configs(_section(**fields), image_size=S)


def test_simclr_refuses_local_crops():
  config = config_lib.default_config()
  config.augment.local_crops = 2
  with pytest.raises(ValueError, match="local_crops"):
    SimCLR(config)


def _coordinates(side):
  """float32 ``[side, side, 3]``: pixel (y, x) holds (y, x) / (side - 1) and a constant 0.3."""
  ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  return np.stack([ys / (side - 1), xs / (side - 1), np.full(ys.shape, 0.3)], axis=-1).astype(np.float32)


def _view_areas(views, side):
  """Covered area fractions ``[...]`` of views ``[..., s, s, 3]`` of ``_coordinates(side)``.

  A crop of h rows resized to s (half-pixel centres) spans (h - h / s) / (side - 1) of the
  encoded range, so h = spread * (side - 1) * s / (s - 1); bicubic reproduces the linear
  ramp except at clamped borders (measured error < 0.002 of the area here).
  """
  s = views.shape[-2]
  rows = views[..., -1, :, 0].mean(-1) - views[..., 0, :, 0].mean(-1)  # y spread, last row - first
  cols = views[..., :, -1, 1].mean(-1) - views[..., :, 0, 1].mean(-1)  # x spread, last column - first
  return (rows * (side - 1) * s / (s - 1)) * (cols * (side - 1) * s / (s - 1)) / side**2


def test_local_crops_span_their_area_range_global_views_keep_simclrs_floor():
  """Global views and local crops with the same area range (0.05, 0.14), aspect 1, of a 64 px
  image whose pixels encode their coordinates, 50 images: 100 global views, 300 local crops.

  Global views keep SimCLR's sampler (``crop_min_covered`` 0.1: no area below 0.1); local
  crops follow torchvision's ``RandomResizedCrop(scale=(0.05, 0.14))``, with no floor: TF
  draws the height uniformly among 15-23 px, so about 2/3 of the crops fall below 0.1 (with
  the floor, none does, and the least is 0.108) and the smallest of 300 is 15 px, 0.055.
  Bounds +-0.005: the measurement is good to 0.002.
  """
  side, n = 64, 50
  section = _section(
    crop_area="(0.05, 0.14)",
    crop_aspect="(1.0, 1.0)",
    flip_prob=0.0,
    jitter_prob=0.0,
    grayscale_prob=0.0,
    blur_prob=0.0,
    local_crops=6,
    local_crop_area="(0.05, 0.14)",
  )
  crops = multicrop.multi_crop_configs(section, image_size=S)
  assert [c.crop_min_covered for c in crops.global_configs] == [augment.SIMCLR_MIN_COVERED] * 2 == [0.1] * 2
  assert crops.local_config.crop_min_covered == multicrop.LOCAL_MIN_COVERED == 0.0
  image = _coordinates(side)
  ds = tf.data.Dataset.range(n).map(
    lambda i: multicrop.multi_crop_views(image, tf.stack([tf.constant(9, tf.int64), i]), crops=crops)
  )
  batch = next(iter(ds.batch(n).as_numpy_iterator()))
  local = _view_areas(batch["local"], side).ravel()
  globals_ = _view_areas(np.stack([batch["view1"], batch["view2"]]), side).ravel()
  assert local.shape == (300,) and globals_.shape == (100,)
  assert local.min() > 0.05 - 0.005 and local.max() < 0.14 + 0.005
  assert local.min() < 0.08  # the low end of the range is reached
  assert np.mean(local < 0.1) > 0.4
  assert globals_.min() > 0.1 - 0.005 and globals_.max() < 0.14 + 0.005  # SimCLR's floor


def test_multi_crop_views_shapes_seeds_and_areas():
  """2 global views (area 0.4-1) and 4 local crops (area 0.05-0.14, 7 px) of a 64 px image
  whose pixels encode their coordinates, every random step but the crop off.

  Every view is of the image (its constant channel kept); a view's covered area is read from
  the coordinate spread: a crop of h rows resized to s spans (h - h / s) / (side - 1) of the
  encoded range, so h ~ spread * (side - 1) * s / (s - 1), to a pixel. Local areas land in
  their range, global ones in theirs (each +-0.03 for that pixel); the local crops have no
  0.1 floor (torchvision's rule, ``crop_min_covered`` 0; the distribution is
  ``test_local_crops_span_their_area_range_global_views_keep_simclrs_floor``'s). The global
  views are ``augment.views``' (so SimCLR's two views are what they were) and the local
  crops are ``augment.views`` at ``seed`` folded with 1.
  """
  side = 64
  section = _section(
    crop_area="(0.4, 1.0)",
    crop_aspect="(1.0, 1.0)",
    flip_prob=0.0,
    jitter_prob=0.0,
    grayscale_prob=0.0,
    blur_prob=0.0,
    local_crops=4,
  )
  crops = multicrop.multi_crop_configs(section, image_size=S)
  image = _coordinates(side)
  n = 24
  ds = tf.data.Dataset.range(n).map(
    lambda i: multicrop.multi_crop_views(image, tf.stack([tf.constant(5, tf.int64), i]), crops=crops)
  )
  batch = next(iter(ds.batch(n).as_numpy_iterator()))
  spec = multicrop.multi_crop_spec(crops, batch_size=n, channels=3)
  assert sorted(batch) == sorted(spec) == ["local", "view1", "view2"]
  for name, value in batch.items():
    assert (value.shape, value.dtype) == (spec[name].shape, spec[name].dtype), name
  assert spec["local"].shape == (n, 4, 7, 7, 3)

  def areas(views):  # [..., s, s, 3] -> covered area fractions [...]
    s = views.shape[-2]
    rows = views[..., -1, :, 0].mean(-1) - views[..., 0, :, 0].mean(-1)  # y spread, last row - first
    cols = views[..., :, -1, 1].mean(-1) - views[..., :, 0, 1].mean(-1)  # x spread, last column - first
    return (rows * (side - 1) * s / (s - 1)) * (cols * (side - 1) * s / (s - 1)) / side**2

  local, globals_ = areas(batch["local"]), areas(np.stack([batch["view1"], batch["view2"]]))
  assert local.min() > 0.05 - 0.03 and local.max() < 0.14 + 0.03
  assert globals_.min() > 0.4 - 0.03 and globals_.max() <= 1.0 + 0.03
  assert len(np.unique(batch["local"].reshape(n * 4, -1), axis=0)) == n * 4  # every crop its own
  for views in batch.values():
    np.testing.assert_allclose(views[..., 2], 0.3, atol=1e-5)  # of this image

  seed = tf.constant([5, 3], tf.int64)
  view1, view2 = augment.two_views(image, seed, config=crops.global_configs[0])
  np.testing.assert_array_equal(batch["view1"][3], view1)
  np.testing.assert_array_equal(batch["view2"][3], view2)
  local_seed = tf.random.experimental.stateless_fold_in(seed, 1)
  expected = augment.views(image, local_seed, configs=(crops.local_config,) * 4)
  np.testing.assert_allclose(batch["local"][3], np.stack(expected), atol=1e-6)
  without_local = dataclasses.replace(crops, local_crops=0, local_config=None)
  assert sorted(multicrop.multi_crop_views(image, seed, crops=without_local)) == ["view1", "view2"]
